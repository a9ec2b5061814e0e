"""Partitions: how queue code meets a Redis Cluster.

A cluster URL stands for ``partitions`` logical store nodes (default 12),
each a :class:`PartitionStore`: a view of the one :class:`~.cluster.ClusterStore`
that puts its own hash tag in front of every key (``{p3.41}nexq:t:...``).
All keys of a partition share one slot, so every batch a node broker sends
through it goes to one primary in one round trip, in order, as it would to
one Pogocache server; the queue layer places queues on partitions with the
ring it uses for Pogocache nodes (:mod:`nexq.queue.cluster`), and the first
partition is home to the cluster-wide keys (registry, cron, limits).

The tags are chosen so the partitions' slots are spread evenly over the
16384 slots: a cluster whose primaries split the slots evenly (as
``redis-cli --cluster create`` does) serves equal shares of partitions
(12 partitions: 12, 6, 4, 3 on 1, 2, 3, 4 primaries).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from .base import Batch, Op, Store
from .cluster import ClusterStore
from .cluster_slots import SLOTS, key_slot
from .planned import PlannedStore

_ONE_KEY = frozenset({"get", "set", "incrby", "append", "expire", "pttl"})


def partition_tags(count: int) -> list[str]:
    """``count`` hash tags (``{p0.N}``...) whose slots fall in ``count``
    equal, consecutive ranges of the slot space, in order."""
    tags = []
    for i in range(count):
        low, high = i * SLOTS // count, (i + 1) * SLOTS // count
        n = 0
        while not low <= key_slot(f"p{i}.{n}") < high:
            n += 1
        tags.append(f"{{p{i}.{n}}}")
    return tags


def tagged(prefix: str, ops: Sequence[Op]) -> list[Op]:
    """``ops`` with ``prefix`` in front of every key (str or bytes)."""
    out: list[Op] = []
    for name, args in ops:
        if name in _ONE_KEY:
            out.append((name, (_tag(prefix, args[0]), *args[1:])))
        elif name == "mget":
            out.append((name, (tuple([_tag(prefix, k) for k in args[0]]),)))
        else:  # delete, exists: every argument is a key
            out.append((name, tuple([_tag(prefix, k) for k in args])))
    return out


def _tag(prefix: str, key: str | bytes) -> str | bytes:
    return prefix + key if type(key) is str else prefix.encode() + key  # type: ignore[operator]


class PartitionStore(Store):
    """One partition of a cluster: a Store whose keys carry its hash tag
    (see module doc). Closing it closes nothing: the cluster store's owner does."""

    kind = "redis"

    def __init__(self, cluster: ClusterStore, tag: str) -> None:
        self.cluster, self.tag = cluster, tag
        self.slot = key_slot(tag)

    async def execute(self, batch: Batch) -> list[Any]:
        view = Batch(durable=batch.durable)
        view.ops = tagged(self.tag, batch.ops)
        return await self.cluster.execute(view)

    async def ping(self) -> float:
        """The round trip to the primary serving this partition; raises
        StoreUnavailable at once (no retry) while it cannot be reached."""
        start = trio.current_time()
        await self.cluster.route([("EXISTS", self.tag + "ping")], retry_for=0)
        return trio.current_time() - start

    async def save(self) -> None:
        """``SAVE`` on every primary (a partition cannot save alone)."""
        await self.cluster.save()

    async def info(self) -> dict[str, str]:
        """The serving primary's address and keys (all partitions on it)."""
        return await self.cluster.node_info(self.slot)

    async def aclose(self) -> None:
        """Nothing to release: the cluster store is closed by its owner."""


class TaggedPlannedStore(PlannedStore):
    """A partition for the planned-store drivers (``nexq.Client`` /
    ``AsyncClient`` on a cluster): its batches carry the partition's tag;
    the driver routes them (:mod:`.cluster_clients`)."""

    def __init__(self, tag: str) -> None:
        super().__init__("redis")
        self.tag = tag

    async def execute(self, batch: Batch) -> list[Any]:
        view = Batch(durable=batch.durable)
        view.ops = tagged(self.tag, batch.ops)
        return await super().execute(view)


def partitions(cluster: ClusterStore, count: int) -> list[tuple[str, Store]]:
    """The cluster's ``count`` partitions, as (node name, store), home first.
    Names are the tags' text (``p0.N``): stable, so queues stay placed."""
    return [(tag.strip("{}"), PartitionStore(cluster, tag)) for tag in partition_tags(count)]
