"""QueueBackend: what the runtime, API and CLI may ask of the queue layer.

Two implementations: :class:`~nexq.queue.node.NodeBroker` (one store node)
and :class:`~nexq.queue.cluster.ClusterBroker` (several nodes, each a
NodeBroker, queues placed by consistent hashing). Code above the queue
layer holds a QueueBackend and never asks which one it has: per-node work
(the scheduler's SAVE, the store guard, node reports) iterates ``nodes``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..task import Outcome, TaskSpec
from .requests import Claimed, Enqueued, EnqueueRequest

if TYPE_CHECKING:
    from .claimer import Settle
    from .cluster_inspect import ClusterInspector
    from .inspect import Inspector
    from .lanes import Pushed
    from .node import NodeBroker

    #: The read and admin model: one node's, or every node's merged (same methods).
    AnyInspector = Inspector | ClusterInspector


class QueueBackend(Protocol):
    """The queue protocols of docs/design.md over one or more store nodes."""

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def lease_ms(self) -> int: ...

    @property
    def nodes(self) -> list[NodeBroker]:
        """The node brokers behind this backend, home node first."""
        ...

    @property
    def names(self) -> list[str]:
        """Each node's name (its URL without credentials), in ``nodes`` order."""
        ...

    @property
    def home(self) -> NodeBroker:
        """The node holding cluster-wide keys: worker registry, cron, limits."""
        ...

    def node_of(self, queue: str) -> int:
        """Index of the node new tasks of ``queue`` go to."""
        ...

    async def held(self, fresh: bool = False) -> list[set[str]]:
        """Per node, the queues it has had tasks of."""
        ...

    def inspector(self) -> AnyInspector:
        """The read and admin model (:class:`~nexq.queue.inspect.Inspector` API)."""
        ...

    def make_spec(self, req: EnqueueRequest, now: float) -> TaskSpec:
        """Validate without writing; raises ValueError naming the field."""
        ...

    async def enqueue(self, type: str, payload: Any = None, **options: Any) -> Enqueued: ...

    async def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[Enqueued]:
        """Create tasks; raises ValueError (nothing written), StoreFull, StoreUnavailable."""
        ...

    def reader(self) -> Any:
        """Per-consumer claim state to pass to :meth:`claim`."""
        ...

    async def claim(self, queues: Sequence[str], capacity: int, worker: str, reader: Any,
                    round_no: int = 0, weights: dict[str, float] | None = None) -> list[Claimed]: ...

    async def claim_pushed(self, hints: Sequence[Pushed], capacity: int,
                           worker: str) -> tuple[list[Claimed], Settle]: ...

    async def heartbeat(self, running: Sequence[Claimed]) -> list[tuple[bool, bool]]: ...

    async def progress(self, c: Claimed, fraction: float | None, message: str | None) -> None: ...

    async def ack(self, c: Claimed, result: Any = None) -> bool: ...

    async def fail(self, c: Claimed, error: BaseException | None, *, outcome: Outcome = Outcome.FAILED,
                   retry_in: float | None = None, traceback: str | None = None,
                   final: bool = False) -> bool: ...

    async def defer(self, c: Claimed, delay: float, reason: str) -> bool: ...

    async def release(self, c: Claimed) -> bool: ...

    async def cancel(self, task_id: str, reason: str = "cancelled on request") -> bool: ...

    async def run_due(self) -> int: ...

    async def sweep(self, older_than: float = 5.0) -> int: ...
