"""Many store nodes behind one QueueBackend: queues placed by consistent hashing.

Pogocache has no clustering, so Nexq spreads *queues* over nodes: a queue's
new tasks go to the node the :class:`~nexq.queue.ring.Ring` gives it, and a
task lives on one node for its whole life (its spec, attempts, lanes,
wheel entries and workflow edges), so every protocol in docs/design.md stays
single-node and keeps its guarantees. The facade only routes:

* enqueue: by each request's queue (a dependency must live on the child's
  node, else the request is refused before anything is written);
* claim: each queue on every node that holds it — its ring node, plus any
  node that still has tasks from before a node was added — so queues drain
  from their old node by themselves after a move;
* an attempt's heartbeat, progress and outcome: to the node it came from
  (``Claimed.node``); a task id: to the node that has its spec (looked up
  once and remembered: ids never move);
* scheduler steps: on every node; one node being down does not stop the
  others.

Cluster-wide keys (the worker registry, cron fire markers, concurrency and
rate limits) live on the *home* node, the first one listed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from ..errors import StoreUnavailable
from ..task import Outcome, TaskSpec
from .claimer import Settle
from .cluster_inspect import ClusterInspector
from .gather import gather
from .lane_reader import LaneReader
from .lanes import Pushed
from .node import NodeBroker
from .requests import Claimed, Enqueued, EnqueueRequest
from .ring import Ring

log = logging.getLogger("nexq.cluster")
HELD_REFRESH = 1.0  # seconds between re-reads of which queues each node holds
LOCATE_CACHE = 100_000  # task id -> node entries kept before the cache restarts


class ClusterReader:
    """A consumer's claim state: one LaneReader per node."""

    def __init__(self, nodes: Sequence[NodeBroker]) -> None:
        self.per_node: list[LaneReader] = [n.reader() for n in nodes]


class ClusterBroker:
    """One NodeBroker per node, presented as one QueueBackend. Each node is
    named by its ``ctx.name`` (its URL without credentials); the first node
    is the home node. Hooks are the nodes' own (each node announces what
    happened on it)."""

    def __init__(self, nodes: Sequence[NodeBroker]) -> None:
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        self.nodes = list(nodes)
        self.names = [n.ctx.name for n in self.nodes]
        if len(set(self.names)) != len(self.names):
            raise ValueError("every node of a cluster needs its own name")
        self.ring = Ring(self.names)
        self.home = self.nodes[0]  # holds cluster-wide keys: registry, cron, limits
        self.clock, self.lease_ms = self.home.clock, self.home.lease_ms
        self._held: list[set[str]] = [set() for _ in self.nodes]
        self._held_at = float("-inf")
        self._where: dict[str, int] = {}
        self._node_of: dict[str, int] = {}

    def node_of(self, queue: str) -> int:
        """Index of the node that new tasks of ``queue`` go to."""
        i = self._node_of.get(queue)
        if i is None:
            if len(self._node_of) >= LOCATE_CACHE:
                self._node_of.clear()
            i = self._node_of[queue] = self.names.index(self.ring.node_for(queue))
        return i

    def reader(self) -> ClusterReader:
        return ClusterReader(self.nodes)

    def inspector(self) -> ClusterInspector:
        return ClusterInspector(self)

    def make_spec(self, req: EnqueueRequest, now: float) -> TaskSpec:
        return self.home.make_spec(req, now)

    # -- where things are ---------------------------------------------------------

    async def held(self, fresh: bool = False) -> list[set[str]]:
        """Per node, the queues it has ever had tasks of (cached for a second).
        An unreachable node keeps its last known set."""
        if fresh or trio.current_time() - self._held_at > HELD_REFRESH:
            async def read(i: int) -> None:
                try:
                    raw = await self.nodes[i].store.get(self.home.keys.queues) or b""
                except StoreUnavailable:
                    return
                self._held[i] = {q for q in raw.decode().split(",") if q}

            await gather(read, range(len(self.nodes)))
            self._held_at = trio.current_time()
        return self._held

    async def placement(self, queues: Sequence[str]) -> list[list[str]]:
        """Per node, which of ``queues`` to claim there: each queue on its
        ring node and on every node that still holds some of its tasks."""
        held = await self.held()
        out: list[list[str]] = [[] for _ in self.nodes]
        for q in queues:
            home = self.node_of(q)
            for i in range(len(self.nodes)):
                if i == home or q in held[i]:
                    out[i].append(q)
        return out

    def remember(self, task_id: str, node: int) -> None:
        if len(self._where) >= LOCATE_CACHE:
            self._where.clear()
        self._where[task_id] = node

    async def locate_many(self, task_ids: Sequence[str]) -> list[int | None]:
        """The node holding each task's spec; None for an unknown task."""
        out: list[int | None] = [self._where.get(t) for t in task_ids]
        missing = sorted({t for t, n in zip(task_ids, out) if n is None})
        if missing:
            names = [self.home.keys.spec(t) for t in missing]
            found = await gather(lambda n: n.store.mget(names), self.nodes)
            for i, values in enumerate(found):
                for t, v in zip(missing, values):
                    if v is not None:
                        self.remember(t, i)
            out = [self._where.get(t) for t in task_ids]
        return out

    async def locate(self, task_id: str) -> int | None:
        return (await self.locate_many([task_id]))[0]

    # -- enqueue -------------------------------------------------------------------

    async def enqueue(self, type: str, payload: Any = None, **options: Any) -> Enqueued:
        return (await self.enqueue_many([EnqueueRequest(type, payload, **options)]))[0]

    async def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[Enqueued]:
        """Enqueue each request on its queue's node; per node, one
        :meth:`NodeBroker.enqueue_many`. Everything that can refuse the whole
        call (validation, a full node, a dependency on another node) is
        checked before any node is written."""
        groups: dict[int, list[int]] = {}
        for j, r in enumerate(requests):
            if not isinstance(r.queue, str):
                self.make_spec(r, self.clock())  # raises ValueError naming the queue
            groups.setdefault(self.node_of(r.queue), []).append(j)
        if len(groups) > 1:
            # A node validates and admits its own part; across nodes, do
            # both first so one bad request or one full node leaves every
            # node unwritten.
            now = self.clock()
            for i, idx in groups.items():
                self.nodes[i].admit([self.make_spec(requests[j], now) for j in idx])
        parents = sorted({p for r in requests for p in r.depends_on})
        if parents:
            where = dict(zip(parents, await self.locate_many(parents)))
            for r in requests:
                for p in r.depends_on:
                    home = self.node_of(r.queue)
                    if where[p] is not None and where[p] != home:
                        raise ValueError(
                            f"depends_on: task {p!r} lives on store node {self.names[where[p] or 0]} "
                            f"but queue {r.queue!r} lives on {self.names[home]}; a task and its "
                            "parents must be in queues on the same node (see docs/scaling.md)")
        results: list[Enqueued | None] = [None] * len(requests)

        async def one(i: int, idx: list[int]) -> None:
            done = await self.nodes[i].enqueue_many([requests[j] for j in idx])
            for j, e in zip(idx, done):
                results[j] = e
                self.remember(e.task_id, i)

        await gather(lambda g: one(*g), groups.items())
        return [r for r in results if r is not None]

    # -- claim and run ------------------------------------------------------------------

    async def claim(self, queues: Sequence[str], capacity: int, worker: str, reader: Any,
                    round_no: int = 0, weights: dict[str, float] | None = None) -> list[Claimed]:
        """Claim from the nodes in turn (a different node first each round)
        until ``capacity`` is used. A node that is down is skipped; only if
        every node failed does the error reach the worker."""
        readers = reader.per_node  # a ClusterReader, from reader()
        plan = await self.placement(queues)
        out: list[Claimed] = []
        failed: list[StoreUnavailable] = []
        n = len(self.nodes)
        for k in range(n):
            i = (round_no + k) % n
            if not plan[i] or len(out) >= capacity:
                continue
            try:
                got = await self.nodes[i].claim(plan[i], capacity - len(out), worker, readers[i],
                                                round_no, weights)
            except StoreUnavailable as exc:
                failed.append(exc)
                continue
            for c in got:  # each Claimed already names its node (i)
                self.remember(c.spec.id, i)
                out.append(c)
        if failed and not out and len(failed) == sum(1 for p in plan if p):
            raise failed[0]
        return out

    async def claim_pushed(self, hints: Sequence[Pushed], capacity: int,
                           worker: str) -> tuple[list[Claimed], Settle]:
        """Claim attempts a doorbell named, each on its queue's ring node
        (where new tasks are written; a hint for another node just fails);
        one settle for them all."""
        by_node: dict[int, list[Pushed]] = {}
        for h in hints:
            by_node.setdefault(self.node_of(h.queue), []).append(h)
        out: list[Claimed] = []
        settles: list[Settle] = []
        for i, mine in by_node.items():
            if len(out) < capacity:
                got, settle = await self.nodes[i].claim_pushed(mine, capacity - len(out), worker)
                settles.append(settle)
                for c in got:
                    self.remember(c.spec.id, i)
                    out.append(c)

        async def settle_all() -> None:
            for settle in settles:
                await settle()

        return out, settle_all

    async def heartbeat(self, running: Sequence[Claimed]) -> list[tuple[bool, bool]]:
        """Per node in parallel; an unreachable node's attempts read as
        (still ours, not decided): their leases lapse if it stays down."""
        out: list[tuple[bool, bool]] = [(True, False)] * len(running)
        by_node: dict[int, list[int]] = {}
        for j, c in enumerate(running):
            by_node.setdefault(c.node, []).append(j)

        async def one(i: int, idx: list[int]) -> None:
            try:
                states = await self.nodes[i].heartbeat([running[j] for j in idx])
            except StoreUnavailable as exc:
                log.warning("heartbeat to node %s failed: %s", self.names[i], exc)
                return
            for j, st in zip(idx, states):
                out[j] = st

        await gather(lambda g: one(*g), by_node.items())
        return out

    async def progress(self, c: Claimed, fraction: float | None, message: str | None) -> None:
        await self.nodes[c.node].progress(c, fraction, message)

    async def ack(self, c: Claimed, result: Any = None) -> bool:
        return await self.nodes[c.node].ack(c, result)

    async def fail(self, c: Claimed, error: BaseException | None, *, outcome: Outcome = Outcome.FAILED,
                   retry_in: float | None = None, traceback: str | None = None, final: bool = False) -> bool:
        return await self.nodes[c.node].fail(c, error, outcome=outcome, retry_in=retry_in,
                                             traceback=traceback, final=final)

    async def defer(self, c: Claimed, delay: float, reason: str) -> bool:
        return await self.nodes[c.node].defer(c, delay, reason)

    async def release(self, c: Claimed) -> bool:
        return await self.nodes[c.node].release(c)

    async def cancel(self, task_id: str, reason: str = "cancelled on request") -> bool:
        i = await self.locate(task_id)
        return False if i is None else await self.nodes[i].cancel(task_id, reason)

    # -- scheduler steps -------------------------------------------------------------------

    async def run_due(self) -> int:
        return await self._each_node(lambda n: n.run_due())

    async def sweep(self, older_than: float = 5.0) -> int:
        return await self._each_node(lambda n: n.sweep(older_than))

    async def _each_node(self, step: Callable[[NodeBroker], Awaitable[int]]) -> int:
        """``step`` on every node in parallel; the sum. Raises only if every node failed."""
        errors: list[StoreUnavailable] = []

        async def one(n: NodeBroker) -> int:
            try:
                return await step(n)
            except StoreUnavailable as exc:
                errors.append(exc)
                return 0

        total = sum(await gather(one, self.nodes))
        if len(errors) == len(self.nodes):
            raise errors[0]
        return total
