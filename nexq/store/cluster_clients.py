"""The planned-store drivers on a Redis Cluster: ``nexq.Client`` and
``nexq.AsyncClient`` with a ``redis+cluster://`` URL.

:class:`BlockingClusterPool` and :class:`AioClusterPool` are the blocking
and asyncio pools (:mod:`.blocking`, :mod:`.aio`) whose batches go through
the cluster routing (:mod:`.cluster_slots`: the same rounds, redirects and
retries as the trio :class:`~.cluster.ClusterStore`), each node's part on
that node's own pool. The partitions' key tags are the queue code's
(:class:`~.cluster_partition.TaggedPlannedStore`); these pools only route.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import attrs

from ..errors import StoreUnavailable
from .aio import AioPool
from .base import Batch
from .blocking import BlockingPool
from .cluster_slots import NotSent, Refresh, Routing, Send, SlotMap, drive, node_address, split_wait
from .planned import Request, Save
from .resp_commands import Command, ReplyError
from .transport import commands_of
from .url import StoreURL

RETRY_FOR = 3.0  # seconds a command keeps retrying while its node cannot be reached (as ClusterStore)


class ClusterMap:
    """The slot map a driver routes by, and where to ask for a fresh one."""

    def __init__(self, url: StoreURL) -> None:
        self.url = url
        self.map = SlotMap.empty()
        self.stale = True

    def node_url(self, node: str) -> StoreURL:
        host, port = node_address(node)
        return attrs.evolve(self.url, scheme="rediss" if self.url.tls else "redis", host=host, port=port,
                            hosts=())

    def candidates(self) -> list[str]:
        """Nodes to read the map from: known primaries, replicas, then the seeds."""
        seeds = [f"{h}:{p}" for h, p in self.url.hosts]
        return list(dict.fromkeys([*self.map.primaries, *self.map.replicas, *seeds]))

    def read(self, node: str, replies: list[Any]) -> bool:
        """Take ``CLUSTER SLOTS``' reply from ``node``; whether it was a map."""
        if isinstance(replies[0], ReplyError):
            return False
        fresh = SlotMap.from_slots(replies[0], node)
        if not fresh.primaries:
            return False
        self.map, self.stale = fresh, False
        return True


class BlockingClusterPool(BlockingPool):
    """A BlockingPool over a cluster: one pool per node (see module doc)."""

    def __init__(self, url: StoreURL, *, size: int = 8, timeout: float = 5.0, replicas: int = 0) -> None:
        super().__init__(url, size=size, timeout=timeout, replicas=replicas)
        self.cluster = ClusterMap(url)
        self._nodes: dict[str, BlockingPool] = {}
        self._lock = threading.Lock()

    def node(self, node: str) -> BlockingPool:
        with self._lock:
            pool = self._nodes.get(node)
            if pool is None:
                pool = self._nodes[node] = BlockingPool(self.cluster.node_url(node), size=self.size,
                                                        timeout=self.timeout)
            return pool

    def _perform(self, request: Request, held: list[Any]) -> Any:
        if not isinstance(request, (Save, Batch)):
            return super()._perform(request, held)
        commands, finish = commands_of(request, self._wait, self.url)
        return finish(self.route(commands) if commands else [])

    def refresh(self) -> None:
        for node in self.cluster.candidates():
            try:
                if self.cluster.read(node, self.node(node).send([("CLUSTER", "SLOTS")])):
                    return
            except StoreUnavailable:
                continue

    def route(self, commands: Sequence[Command]) -> list[Any]:
        """``commands``' raw replies, each sent to its slot's node."""
        if self.closed:
            raise StoreUnavailable(f"{self.url}: the client is closed")
        if self.cluster.stale:
            self.refresh()
        plain, wait = split_wait(commands)
        routing = Routing(plain, self.cluster.map, wait)
        steps = drive(routing, RETRY_FOR, time.monotonic)
        try:
            action = next(steps)
            while True:
                if isinstance(action, Send):
                    errors = []
                    for node, indexes in action.sends.items():
                        try:
                            routing.replied(indexes, self.node(node).send(routing.commands(indexes)))
                        except NotSent:
                            routing.unreachable(indexes)
                        except StoreUnavailable as exc:
                            self.cluster.stale = True
                            errors.append(exc)
                    if errors:
                        raise errors[0]
                elif isinstance(action, Refresh):
                    self.refresh()
                    routing.map = self.cluster.map
                else:
                    time.sleep(action.seconds)
                action = next(steps)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def close(self) -> None:
        super().close()
        with self._lock:
            for pool in self._nodes.values():
                pool.close()


class AioClusterPool(AioPool):
    """An AioPool over a cluster: one pool per node (see module doc)."""

    def __init__(self, url: StoreURL, *, size: int = 4, timeout: float = 5.0, replicas: int = 0) -> None:
        super().__init__(url, size=size, timeout=timeout, replicas=replicas)
        self.cluster = ClusterMap(url)
        self._nodes: dict[str, AioPool] = {}

    def node(self, node: str) -> AioPool:
        pool = self._nodes.get(node)
        if pool is None:
            pool = self._nodes[node] = AioPool(self.cluster.node_url(node), size=self.size, timeout=self.timeout)
        return pool

    async def _call(self, commands: Sequence[Command]) -> list[Any]:
        return await self.route(commands)

    async def refresh(self) -> None:
        for node in self.cluster.candidates():
            try:
                if self.cluster.read(node, await self.node(node).send([("CLUSTER", "SLOTS")])):
                    return
            except StoreUnavailable:
                continue

    async def _one(self, routing: Routing, node: str, indexes: list[int], errors: list[StoreUnavailable]) -> None:
        try:
            routing.replied(indexes, await self.node(node).send(routing.commands(indexes)))
        except NotSent:
            routing.unreachable(indexes)
        except StoreUnavailable as exc:
            self.cluster.stale = True
            errors.append(exc)

    async def route(self, commands: Sequence[Command]) -> list[Any]:
        """``commands``' raw replies, each sent to its slot's node (nodes in parallel)."""
        if self.closed:
            raise StoreUnavailable(f"{self.url}: the client is closed")
        if self.cluster.stale:
            await self.refresh()
        plain, wait = split_wait(commands)
        routing = Routing(plain, self.cluster.map, wait)
        loop = asyncio.get_running_loop()
        steps = drive(routing, RETRY_FOR, loop.time)
        try:
            action = next(steps)
            while True:
                if isinstance(action, Send):
                    errors: list[StoreUnavailable] = []
                    await asyncio.gather(*[self._one(routing, node, indexes, errors)
                                           for node, indexes in action.sends.items()])
                    if errors:
                        raise errors[0]
                elif isinstance(action, Refresh):
                    await self.refresh()
                    routing.map = self.cluster.map
                else:
                    await asyncio.sleep(action.seconds)
                action = next(steps)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await super().aclose()
        for pool in self._nodes.values():
            await pool.aclose()
