"""The node broker: the queue protocols over one store node, built from parts.

:class:`NodeBroker` is what :class:`~nexq.queue.backend.QueueBackend`
promises, for one store: it builds one :class:`~nexq.queue.context.NodeContext`
and the parts that share it (Producer, Claimer, Outcomes, Due) and hands
each call to the part that owns it. Features plug in through ``hooks``
(:mod:`nexq.hooks`), given at construction; the node adds its own
workflow subscriber (:class:`~nexq.queue.workflow.Workflows`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..hooks import Hooks
from ..keys import Keys
from ..store import Store
from ..task import Outcome, TaskSpec
from .claimer import Claimer, Settle
from .context import NodeContext, WebhookPolicy
from .due import Due
from .inspect import Inspector
from .lane_reader import LaneReader
from .lanes import Pushed
from .outcomes import Outcomes
from .producer import Producer
from .requests import Claimed, Enqueued, EnqueueRequest
from .wheel import Entry, Wheel
from .workflow import Workflows

DAY = 86_400


class NodeBroker:
    """The queue protocols over one Store, in one key namespace."""

    def __init__(
        self,
        store: Store,
        *,
        namespace: str = "nexq",
        clock: Callable[[], float] = time.time,
        lease_ms: int = 30_000,
        retention: float = 7 * DAY,
        bucket_ms: int = 100,
        fair_every: int = 10,
        hole_grace: float = 5.0,
        hooks: Hooks | None = None,
        webhooks: WebhookPolicy = WebhookPolicy(),
        name: str = "node0",
        index: int = 0,
        coalesce: bool = True,
    ) -> None:
        """``coalesce``: concurrent small enqueues share round trips
        (:mod:`nexq.queue.enqueue_group`, under trio and under the asyncio
        driver of :mod:`nexq.store.planned`; the blocking client, one
        broker per thread, turns it off)."""
        keys = Keys(namespace)
        self.ctx = NodeContext(
            store=store, keys=keys, clock=clock, wheel=Wheel(store, keys, clock, bucket_ms),
            hooks=(hooks or Hooks()).extended(Workflows()), lease_ms=lease_ms, retention=retention,
            webhooks=webhooks, name=name, index=index,
        )
        # The context's facts, at hand for callers (all immutable).
        self.store, self.keys, self.clock = store, keys, clock
        self.lease_ms, self.retention = lease_ms, retention
        self.producer = Producer(self.ctx, self, coalesce)
        self.claimer = Claimer(self.ctx, self, fair_every, hole_grace)
        self.outcomes = Outcomes(self.ctx, self)
        self.due = Due(self.ctx, self)

    # -- what it is ------------------------------------------------------------------

    @property
    def nodes(self) -> list[NodeBroker]:
        """The node brokers behind this backend: itself."""
        return [self]

    @property
    def names(self) -> list[str]:
        return [self.ctx.name]

    @property
    def home(self) -> NodeBroker:
        """The node holding cluster-wide keys (registry, cron, limits): itself."""
        return self

    def node_of(self, queue: str) -> int:
        """Index of the node new tasks of ``queue`` go to: always 0."""
        return 0

    async def held(self, fresh: bool = False) -> list[set[str]]:
        """Per node, the queues it has had tasks of."""
        return [set(await self.inspector().queues())]

    def inspector(self) -> Inspector:
        """The read and admin model over this node's keys."""
        return Inspector(self)

    # -- producing -----------------------------------------------------------------

    def make_spec(self, req: EnqueueRequest, now: float) -> TaskSpec:
        """Validate ``req`` without writing; raises ValueError naming the field."""
        return self.producer.make_spec(req, now)

    def admit(self, specs: Sequence[TaskSpec]) -> None:
        """Run the ``before_enqueue`` hooks: raise if this node refuses ``specs``."""
        self.ctx.hooks.before_enqueue(self, specs)

    async def enqueue(self, type: str, payload: Any = None, **options: Any) -> Enqueued:
        """Enqueue one task; see :class:`EnqueueRequest` for the options."""
        return (await self.producer.enqueue_many([EnqueueRequest(type, payload, **options)]))[0]

    async def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[Enqueued]:
        """Enqueue tasks in a constant number of round trips (see Producer)."""
        return await self.producer.enqueue_many(requests)

    # -- claiming and running ----------------------------------------------------------

    def reader(self) -> LaneReader:
        """Per-consumer claim state to pass to :meth:`claim`."""
        return self.claimer.reader()

    async def claim(self, queues: Sequence[str], capacity: int, worker: str, reader: Any,
                    round_no: int = 0, weights: dict[str, float] | None = None) -> list[Claimed]:
        """Claim up to ``capacity`` attempts (see Claimer.claim)."""
        return await self.claimer.claim(queues, capacity, worker, reader, round_no, weights)

    async def claim_pushed(self, hints: Sequence[Pushed], capacity: int, worker: str) -> tuple[list[Claimed], Settle]:
        """Claim attempts a doorbell named; and their settle (see Claimer.claim_pushed)."""
        return await self.claimer.claim_pushed(hints, capacity, worker)

    async def heartbeat(self, running: Sequence[Claimed]) -> list[tuple[bool, bool]]:
        """Renew leases; per attempt: (lease still ours, decided elsewhere)."""
        return await self.claimer.heartbeat(running)

    async def progress(self, c: Claimed, fraction: float | None, message: str | None) -> None:
        await self.claimer.progress(c, fraction, message)

    # -- outcomes ------------------------------------------------------------------------

    async def ack(self, c: Claimed, result: Any = None) -> bool:
        return await self.outcomes.ack(c, result)

    async def fail(self, c: Claimed, error: BaseException | None, *, outcome: Outcome = Outcome.FAILED,
                   retry_in: float | None = None, traceback: str | None = None, final: bool = False) -> bool:
        return await self.outcomes.fail(c, error, outcome=outcome, retry_in=retry_in, traceback=traceback,
                                        final=final)

    async def defer(self, c: Claimed, delay: float, reason: str) -> bool:
        return await self.outcomes.defer(c, delay, reason)

    async def release(self, c: Claimed) -> bool:
        return await self.outcomes.release(c)

    async def cancel(self, task_id: str, reason: str = "cancelled on request") -> bool:
        return await self.outcomes.cancel(task_id, reason)

    # -- the time wheel ----------------------------------------------------------------

    async def promote(self, entries: Sequence[Entry]) -> None:
        """Move due attempts into their lanes, each exactly once."""
        await self.due.promote(entries)

    async def handle_due(self, entries: Sequence[Entry]) -> None:
        """Act on due wheel entries a producer found past the cursor."""
        await self.due.handle(entries)

    async def run_due(self) -> int:
        return await self.due.run_due()

    async def sweep(self, older_than: float = 5.0) -> int:
        return await self.due.sweep(older_than)
