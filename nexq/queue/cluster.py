"""Many store nodes behind one Broker: queues placed by consistent hashing.

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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import attrs
import trio

from ..errors import StoreFull, StoreUnavailable
from .engine import Broker, Claimed
from .enqueue import Enqueued, EnqueueRequest
from .lanes import LaneReader
from .ring import Ring

log = logging.getLogger("nexq.cluster")
T = TypeVar("T")
A = TypeVar("A")
HELD_REFRESH = 1.0  # seconds between re-reads of which queues each node holds
LOCATE_CACHE = 100_000  # task id -> node entries kept before the cache restarts


async def gather(fn: Callable[[A], Awaitable[T]], items: Iterable[A]) -> list[T]:
    """``fn(item)`` for every item, concurrently; the results in order (the
    first error wins)."""
    args = list(items)
    out: list[Any] = [None] * len(args)

    async def one(i: int) -> None:
        out[i] = await fn(args[i])

    try:
        async with trio.open_nursery() as nursery:
            for i in range(len(args)):
                nursery.start_soon(one, i)
    except BaseExceptionGroup as group:
        # Callers handle StoreUnavailable & co. as if they had made the
        # calls one by one: hand them the first error, not a group.
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return out


def nodes_of(broker: Broker) -> list[Broker]:
    """The node brokers behind ``broker`` (itself, for a single store)."""
    return list(broker.nodes) if isinstance(broker, ClusterBroker) else [broker]


class ClusterReader(LaneReader):
    """A consumer's claim state: one LaneReader per node."""

    def __init__(self, nodes: Sequence[Broker]) -> None:
        super().__init__(nodes[0].store, nodes[0].keys)
        self.per_node = [n.reader() for n in nodes]


class ClusterBroker(Broker):
    """One Broker per node, presented as one. ``names[i]`` names ``nodes[i]``
    (its URL without credentials); the first node is the home node."""

    def __init__(self, nodes: Sequence[Broker], names: Sequence[str]) -> None:
        if len(nodes) != len(names) or not nodes:
            raise ValueError("a cluster needs one name per node, and at least one node")
        home = nodes[0]
        super().__init__(
            home.store, namespace=home.keys.ns, clock=home.clock, lease_ms=home.lease_ms,
            retention=home.retention, bucket_ms=int(home.wheel.width * 1000),
            events=home.events, doorbells=home._list_workers,
        )
        self.nodes, self.names, self.ring = list(nodes), list(names), Ring(names)
        for n in self.nodes:
            n.on_wake = self.wake  # node-local enqueues wake this process's claimers
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

    def inspector(self) -> Any:
        from .cluster_inspect import ClusterInspector

        return ClusterInspector(self)

    # -- where things are ---------------------------------------------------------

    async def held(self, fresh: bool = False) -> list[set[str]]:
        """Per node, the queues it has ever had tasks of (cached for a second).
        An unreachable node keeps its last known set."""
        if fresh or trio.current_time() - self._held_at > HELD_REFRESH:
            async def read(i: int) -> None:
                try:
                    raw = await self.nodes[i].store.get(self.keys.queues) or b""
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
            names = [self.keys.spec(t) for t in missing]
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

    async def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[Enqueued]:
        """Enqueue each request on its queue's node; per node, one
        :meth:`Broker.enqueue_many`. Everything that can refuse the whole
        call (validation, a full node, a dependency on another node) is
        checked before any node is written."""
        groups: dict[int, list[int]] = {}
        for j, r in enumerate(requests):
            if not isinstance(r.queue, str):
                self.make_spec(r, self.clock())  # raises ValueError naming the queue
            groups.setdefault(self.node_of(r.queue), []).append(j)
        if len(groups) > 1:
            # A node validates its own part; across nodes, validate all
            # first so one bad request leaves every node unwritten.
            now = self.clock()
            for r in requests:
                self.make_spec(r, now)  # raises ValueError naming the bad field
        for i in groups:
            if self.nodes[i].refusing:
                raise StoreFull(f"node {self.names[i]}: {self.nodes[i].refusing}")
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

    async def announce(self) -> None:
        await self.nodes[0].announce()

    # -- claim and run ------------------------------------------------------------------

    async def claim(
        self,
        queues: Sequence[str],
        capacity: int,
        worker: str,
        reader: LaneReader,
        round_no: int = 0,
        weights: dict[str, float] | None = None,
    ) -> list[Claimed]:
        """Claim from the nodes in turn (a different node first each round)
        until ``capacity`` is used. A node that is down is skipped; only if
        every node failed does the error reach the worker."""
        readers = reader.per_node if isinstance(reader, ClusterReader) else None
        if readers is None:
            raise TypeError("a cluster claim needs the reader from ClusterBroker.reader()")
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
            for c in got:
                self.remember(c.spec.id, i)
                out.append(attrs.evolve(c, node=i))
        if failed and not out and len(failed) == sum(1 for p in plan if p):
            raise failed[0]
        return out

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

    def watch_cancel(self, c: Claimed, hook: Callable[[], None] | None) -> None:
        self.nodes[c.node].watch_cancel(c, hook)

    async def progress(self, c: Claimed, fraction: float | None, message: str | None) -> None:
        await self.nodes[c.node].progress(c, fraction, message)

    async def ack(self, c: Claimed, result: Any = None) -> bool:
        return await self.nodes[c.node].ack(c, result)

    async def fail(self, c: Claimed, error: BaseException | None, **kw: Any) -> bool:
        return await self.nodes[c.node].fail(c, error, **kw)

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

    async def _each_node(self, step: Callable[[Broker], Awaitable[int]]) -> int:
        """``step`` on every node in parallel; the sum. Raises only if every node failed."""
        errors: list[StoreUnavailable] = []

        async def one(n: Broker) -> int:
            try:
                return await step(n)
            except StoreUnavailable as exc:
                errors.append(exc)
                return 0

        total = sum(await gather(one, self.nodes))
        if len(errors) == len(self.nodes):
            raise errors[0]
        return total
