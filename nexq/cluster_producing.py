"""``nexq.Client`` / ``nexq.AsyncClient`` on a Redis Cluster URL.

The trio runtime sees a cluster as partitions placed by the ring
(:mod:`nexq.store.cluster_partition`, :class:`nexq.queue.cluster.ClusterBroker`).
The clients run the same queue code on planned stores, so they get the same
partitions (one :class:`~nexq.queue.node.NodeBroker` each, over a
:class:`~nexq.store.cluster_partition.TaggedPlannedStore`) behind
:class:`PlannedCluster`: the part of a node broker the clients use
(``enqueue_many``, ``inspector()``'s ``get``, ``get_many``, ``queues``,
``queue_stats``, the first page of ``list``, ``cancel``, ``store.sleep``,
``producer.release`` / ``refresh``), routing by queue with the runtime's ring and finding
a task id's partition by its spec (remembered: ids never move). It awaits
only store calls, so it runs on the blocking and asyncio drivers.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any

from .client_broker import ClientBroker
from .queue import Enqueued, NodeBroker
from .queue.inspect import Page
from .queue.requests import EnqueueRequest
from .queue.ring import Ring
from .store.cluster_partition import TaggedPlannedStore, partition_tags
from .store.url import StoreURL
from .task import Task

LOCATE_CACHE = 100_000  # task id -> partition entries kept before the cache restarts


class _Producers:
    def __init__(self, nodes: Sequence[NodeBroker]) -> None:
        self.nodes = nodes

    async def release(self) -> None:
        """Give back every partition's reserved slots."""
        for node in self.nodes:
            await node.producer.release()

    def warm_due(self) -> bool:
        return any(node.producer.warm_due() for node in self.nodes)

    async def refresh(self) -> bool:
        """Refresh each partition's producer that is due."""
        wrote = False
        for node in self.nodes:
            if node.producer.warm_due():
                wrote = await node.producer.refresh() or wrote
        return wrote


class _Inspector:
    def __init__(self, cluster: PlannedCluster) -> None:
        self.cluster = cluster

    async def get(self, task_id: str) -> Task | None:
        i = await self.cluster.locate(task_id)
        return None if i is None else await self.cluster.nodes[i].inspector().get(task_id)

    async def get_many(self, task_ids: Sequence[str]) -> list[Task | None]:
        """:meth:`get` for many ids, one read per partition holding some."""
        groups: dict[int, list[int]] = {}
        out: list[Task | None] = [None] * len(task_ids)
        for pos, tid in enumerate(task_ids):
            i = await self.cluster.locate(tid)
            if i is not None:
                groups.setdefault(i, []).append(pos)
        for i, positions in groups.items():
            got = await self.cluster.nodes[i].inspector().get_many([task_ids[p] for p in positions])
            for p, task in zip(positions, got, strict=True):
                out[p] = task
        return out

    async def list(self, *, status: str | None = None, type: str | None = None, queue: str | None = None,
                   limit: int = 50, cursor: int | str | None = None, id_prefix: str | None = None,
                   text: str | None = None, created_after: float | None = None,
                   created_before: float | None = None) -> Page:
        """The newest ``limit`` tasks over every partition (filters as
        Inspector.list). The first page only: a ``cursor`` raises
        ValueError (page through the REST API, which merges cursors)."""
        if cursor is not None:
            raise ValueError("nexq.Client on a cluster lists the first page only; page with the REST API")
        tasks: builtins.list[Task] = []
        for node in self.cluster.nodes:
            tasks += (await node.inspector().list(
                status=status, type=type, queue=queue, limit=limit, id_prefix=id_prefix, text=text,
                created_after=created_after, created_before=created_before)).tasks
        tasks.sort(key=lambda t: t.spec.created_at, reverse=True)
        return Page(tasks[:limit], None)

    async def queues(self) -> builtins.list[str]:
        """Every queue any partition has had tasks of."""
        seen: set[str] = set()
        for node in self.cluster.nodes:
            seen.update(await node.inspector().queues())
        return sorted(seen)

    async def queue_stats(self, names: Sequence[str] | None = None) -> builtins.list[dict[str, Any]]:
        """Per queue, the stats on its partition (a queue never moves
        between partitions: their list is fixed by the URL)."""
        names = await self.queues() if names is None else list(names)
        out = []
        for name in names:
            out += await self.cluster.nodes[self.cluster.node_of(name)].inspector().queue_stats([name])
        return out


class PlannedCluster:
    """The clients' broker over a cluster's partitions (see module doc)."""

    def __init__(self, nodes: Sequence[NodeBroker]) -> None:
        self.nodes = list(nodes)
        self.names = [n.ctx.name for n in self.nodes]
        self.ring = Ring(self.names)
        self.store = self.nodes[0].store
        self.producer = _Producers(self.nodes)
        self._where: dict[str, int] = {}

    def node_of(self, queue: str) -> int:
        return self.names.index(self.ring.node_for(queue))

    def _remember(self, task_id: str, i: int) -> None:
        if len(self._where) >= LOCATE_CACHE:
            self._where.clear()
        self._where[task_id] = i

    async def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[Enqueued]:
        """Each request on its queue's partition; the answers in order."""
        groups: dict[int, list[int]] = {}
        for pos, req in enumerate(requests):
            groups.setdefault(self.node_of(req.queue), []).append(pos)
        out: list[Enqueued | None] = [None] * len(requests)
        for i, positions in groups.items():
            done = await self.nodes[i].enqueue_many([requests[p] for p in positions])
            for p, e in zip(positions, done, strict=True):
                out[p] = e
                self._remember(e.task_id, i)
        return [e for e in out if e is not None]  # every position was filled above

    async def locate(self, task_id: str) -> int | None:
        """The partition holding ``task_id``'s spec; None if none does."""
        i = self._where.get(task_id)
        if i is not None:
            return i
        for i, node in enumerate(self.nodes):
            if await node.store.exists(node.keys.spec(task_id)):
                self._remember(task_id, i)
                return i
        return None

    def inspector(self) -> _Inspector:
        return _Inspector(self)

    async def cancel(self, task_id: str, reason: str = "cancelled on request") -> bool:
        i = await self.locate(task_id)
        return await self.nodes[0 if i is None else i].cancel(task_id, reason)


def cluster_broker(url: StoreURL, make: Callable[[TaggedPlannedStore, str], NodeBroker]) -> ClientBroker:
    """The clients' broker for cluster ``url``: ``make(store, name)`` builds
    each partition's node broker."""
    nodes = [make(TaggedPlannedStore(tag), tag.strip("{}")) for tag in partition_tags(url.partitions)]
    return PlannedCluster(nodes)
