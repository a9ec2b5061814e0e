"""ClusterStore: the Store protocol over a Redis/Valkey Cluster, under trio.

``open_cluster_store(url)`` (a ``redis+cluster://h1:p1,h2:p2`` URL) yields a
:class:`ClusterStore`. It reads the slot map (``CLUSTER SLOTS``) from the
first seed that answers, keeps pipelined connections per primary (the
auto-pipelining of :mod:`.resp_conn`, one small pool per node) and sends
each command to its key's slot's node; the routing itself (splitting a
batch or an ``MGET`` by node, joining answers in order, following ``MOVED``
and ``ASK``) is :mod:`.cluster_slots`, plain data.

Failures: a node that refuses the connection (nothing was sent) makes the
store read the map again and retry, with a growing pause, for up to
``retry_for`` seconds: a primary's death costs a wait until the map names
its promoted replica, then commands succeed. A connection lost while
commands were in flight raises StoreUnavailable at once (they may have run;
Nexq's protocols cope with that) and the next call reads the map first.

Queue code meets a cluster through :mod:`.cluster_partition`: partitions
whose keys share a hash tag, so every batch a node broker sends is one slot,
one node, one round trip.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
from hiredis import pack_command
from trio.lowlevel import wait_task_rescheduled

from ..errors import StoreError, StoreUnavailable
from .base import Batch, Store
from .cluster_slots import NotSent, Refresh, Routing, Send, SlotMap, drive
from .nursery import background_nursery
from .replicas import check_acks, check_replicas, wait_command, wait_ms
from .resp_commands import BatchPlan, Command, ReplyError, raw_command_name, store_error
from .resp_conn import RespConnection
from .resp_open import open_stream, tls_context
from .url import StoreURL, parse_store_url

SPILL = 64  # outstanding commands at which a node's pool looks past a connection (as RespStore)
BACKOFF_FIRST, BACKOFF_MAX = 0.02, 0.5  # seconds between connects to a node that refused, doubling
REFRESH_EVERY = 0.05  # seconds: concurrent callers share one read of the map


class NodePool:
    """Pipelined connections to one cluster node, opened on demand."""

    def __init__(self, url: StoreURL, nursery: trio.Nursery, size: int, connect_timeout: float,
                 command_timeout: float, ssl_context: ssl.SSLContext | None) -> None:
        self.url, self._nursery, self._size = url, nursery, size
        self._connect_timeout, self._command_timeout, self._ssl = connect_timeout, command_timeout, ssl_context
        self._conns: list[RespConnection] = []
        self._lock = trio.Lock()
        self._delay = 0.0
        self._retry_at = 0.0
        self._last: StoreError | None = None
        self.closed = False

    def _dropped(self, conn: RespConnection) -> None:
        if conn in self._conns:
            self._conns.remove(conn)

    async def _connection(self) -> RespConnection:
        for conn in self._conns:
            if conn.outstanding < SPILL:
                return conn
        if self._conns and len(self._conns) >= self._size:
            return min(self._conns, key=_load)
        async with self._lock:
            if self.closed:
                raise NotSent(f"{self.url}: the store is closed")
            if self._conns and (len(self._conns) >= self._size or self._conns[-1].outstanding < SPILL):
                return min(self._conns, key=_load)
            wait = self._retry_at - trio.current_time()
            if wait > 0:
                raise NotSent(f"{self.url}: not reconnecting for another {wait:.2f} s after: {self._last}")
            try:
                stream, parser = await open_stream(self.url, self._connect_timeout, self._ssl)
            except StoreError as exc:
                self._delay = min(max(self._delay * 2, BACKOFF_FIRST), BACKOFF_MAX)
                self._retry_at = trio.current_time() + self._delay
                self._last = exc
                raise NotSent(str(exc)) from exc
            self._delay = 0.0
            conn = RespConnection(stream, parser, label=str(self.url), command_timeout=self._command_timeout,
                                  on_close=self._dropped)
            await self._nursery.start(conn.serve)
            self._conns.append(conn)
            return conn

    async def call(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write; their raw replies in order (error
        replies as ReplyError objects). Raises NotSent if nothing was sent,
        StoreUnavailable if the connection died with the commands in flight."""
        data = b"".join([pack_command(c) for c in commands])
        conn = await self._connection()
        try:
            abort = conn.submit_many(data, len(commands))
        except StoreUnavailable as exc:
            raise NotSent(str(exc)) from exc
        return await wait_task_rescheduled(abort)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.closed = True
        for conn in list(self._conns):
            conn.close()

    async def finished(self) -> None:
        for conn in list(self._conns):
            await conn.finished.wait()


def _load(conn: RespConnection) -> int:
    return conn.outstanding


class ClusterStore(Store):
    """The Store protocol over a Redis Cluster (see module doc)."""

    kind = "redis-cluster"

    def __init__(self, url: StoreURL, nursery: trio.Nursery, *, pool_size: int, connect_timeout: float,
                 command_timeout: float, retry_for: float, ssl_context: ssl.SSLContext | None,
                 replicas: int = 0) -> None:
        self.url = url
        self.replicas = replicas
        self._wait = wait_command(replicas, wait_ms(command_timeout))
        self._nursery = nursery
        self._options = (pool_size, connect_timeout, command_timeout, ssl_context)
        self.retry_for = retry_for
        self.map = SlotMap.empty()
        self._pools: dict[str, NodePool] = {}
        self._refresh_lock = trio.Lock()
        self._refreshed_at = float("-inf")
        self._stale = True
        self._refresh_error: StoreError | None = None
        self._closed = False

    # -- nodes and the map -----------------------------------------------------------

    def pool(self, node: str) -> NodePool:
        """The connection pool of ``node`` ("host:port"), made on first use."""
        pool = self._pools.get(node)
        if pool is None:
            host, _, port = node.rpartition(":")
            url = attrs.evolve(self.url, scheme="rediss" if self.url.tls else "redis", host=host, port=int(port), hosts=())
            pool = self._pools[node] = NodePool(url, self._nursery, *self._options)
        return pool

    async def refresh(self) -> None:
        """Read the slot map from the first node that answers (known
        primaries, then replicas, then the URL's seeds). Concurrent callers
        share one read; if no node answers the old map stays."""
        async with self._refresh_lock:
            if trio.current_time() - self._refreshed_at < REFRESH_EVERY:
                return
            seeds = [f"{h}:{p}" for h, p in self.url.hosts]
            for node in dict.fromkeys([*self.map.primaries, *self.map.replicas, *seeds]):
                try:
                    (reply,) = await self.pool(node).call([("CLUSTER", "SLOTS")])
                except StoreUnavailable as exc:
                    self._refresh_error = exc
                    continue
                if isinstance(reply, ReplyError):
                    continue
                fresh = SlotMap.from_slots(reply, node)
                if not fresh.primaries:
                    continue
                self.map, self._stale = fresh, False
                self._refreshed_at = trio.current_time()
                return

    # -- routing -----------------------------------------------------------------------

    async def route(self, commands: Sequence[Command], wait: Command | None = None,
                    retry_for: float | None = None) -> list[Any]:
        """Send ``commands`` to their slots' nodes; their raw replies in
        order (see module doc for redirects and retries). ``retry_for``
        overrides the store's (0: report an unreachable node at once, as a
        health check should). Raises StoreUnavailable when the cluster
        cannot serve them in time."""
        if self._closed:
            raise StoreUnavailable(f"{self.url}: the store is closed")
        if self._stale:
            await self.refresh()
        routing = Routing(commands, self.map, wait)
        steps = drive(routing, self.retry_for if retry_for is None else retry_for, trio.current_time)
        try:
            action = next(steps)
            while True:
                if isinstance(action, Send):
                    errors: list[StoreError] = []
                    if len(action.sends) == 1:
                        ((node, indexes),) = action.sends.items()
                        await self._send(routing, node, indexes, errors)
                    else:
                        async with trio.open_nursery() as nursery:
                            for node, indexes in action.sends.items():
                                nursery.start_soon(self._send, routing, node, indexes, errors)
                    if errors:
                        raise errors[0]
                elif isinstance(action, Refresh):
                    self._stale = True
                    await self.refresh()
                    routing.map = self.map
                else:
                    await trio.sleep(action.seconds)
                action = next(steps)
        except StopIteration as stop:
            replies: list[Any] = stop.value
        except StoreUnavailable as exc:
            if self.map.primaries or self._refresh_error is None:
                raise
            raise StoreUnavailable(f"{self.url}: no cluster node answers (last: {self._refresh_error})") from exc
        if wait is not None:
            check_acks(replies.pop(), self.replicas, self.url)
        return replies

    async def _send(self, routing: Routing, node: str, indexes: list[int], errors: list[StoreError]) -> None:
        try:
            replies = await self.pool(node).call(routing.commands(indexes))
        except NotSent:
            routing.unreachable(indexes)
            return
        except StoreError as exc:
            self._stale = True  # the node may be gone: read the map before the next call
            errors.append(exc)
            return
        routing.replied(indexes, replies)

    async def on_each_primary(self, command: Command) -> dict[str, Any]:
        """``command``'s raw reply from every primary, by node. Raises
        StoreUnavailable if one cannot be reached."""
        if self._stale or not self.map.primaries:
            await self.refresh()
        if not self.map.primaries:
            raise StoreUnavailable(f"{self.url}: no cluster node answered CLUSTER SLOTS")
        out: dict[str, Any] = {}

        async def one(node: str) -> None:
            try:
                (out[node],) = await self.pool(node).call([command])
            except StoreUnavailable:
                self._stale = True
                raise

        try:
            async with trio.open_nursery() as nursery:
                for node in self.map.primaries:
                    nursery.start_soon(one, node)
        except BaseExceptionGroup as group:
            first = group.exceptions[0]
            raise first if isinstance(first, Exception) else group from None
        return out

    # -- the Store protocol ---------------------------------------------------------------

    async def execute(self, batch: Batch) -> list[Any]:
        plan = BatchPlan(batch)
        if not plan.commands:
            return plan.answers([])
        # A durable batch: WAIT right behind its writes, on each node's connection.
        wait = self._wait if batch.durable and self.replicas else None
        return plan.answers(await self.route(plan.commands, wait))

    async def execute_command(self, *args: Any) -> Any:
        """Send one raw command (Pogocache's set, as RespStore) to its key's
        node, a keyless one to the node of slot 0; its reply."""
        if not args:
            raise ValueError("execute_command needs a command name")
        (reply,) = await self.route([(raw_command_name(args[0]), *args[1:])])
        if type(reply) is ReplyError:
            raise store_error(reply)
        return reply

    async def ping(self) -> float:
        """Every primary answers; the slowest round trip."""
        start = trio.current_time()
        await self.on_each_primary(("PING",))
        return trio.current_time() - start

    async def save(self) -> None:
        """``SAVE`` on every primary."""
        for reply in (await self.on_each_primary(("SAVE",))).values():
            if type(reply) is ReplyError:
                raise store_error(reply)

    async def info(self) -> dict[str, str]:
        """kind, url, the primaries and the keys on them all."""
        sizes = await self.on_each_primary(("DBSIZE",))
        return {"kind": self.kind, "url": str(self.url), "primaries": ",".join(sizes),
                "keys": str(sum(v for v in sizes.values() if isinstance(v, int)))}

    async def node_info(self, slot: int) -> dict[str, str]:
        """Facts about the primary serving ``slot``: its address and keys."""
        node = self.map.node_for(slot)
        if node is None:
            await self.refresh()
            node = self.map.node_for(slot)
        if node is None:
            raise StoreUnavailable(f"no cluster node serves slot {slot}")
        try:
            (keys,) = await self.pool(node).call([("DBSIZE",)])
        except StoreUnavailable:
            self._stale = True
            raise
        out = {"kind": self.kind, "url": str(self.url), "node": node}
        if isinstance(keys, int):
            out["keys"] = str(keys)
        return out

    async def aclose(self) -> None:
        """Close every connection; callers still waiting get StoreUnavailable."""
        self._closed = True
        pools = list(self._pools.values())
        for pool in pools:
            pool.close()
        with trio.move_on_after(1.0, shield=True):
            for pool in pools:
                await pool.finished()


@asynccontextmanager
async def open_cluster_store(url: StoreURL | str, *, pool_size: int = 2, connect_timeout: float = 5.0,
                             command_timeout: float = 10.0, retry_for: float = 3.0,
                             replicas: int = 0) -> AsyncIterator[ClusterStore]:
    """A ClusterStore for the ``async with``; its connections close on exit.

    Does not connect: the first command reads the map. ``pool_size``:
    connections per node; ``retry_for``: seconds a command keeps retrying
    while its node cannot be reached (a failover under way) before raising
    StoreUnavailable; ``replicas``: durable batches wait for that many
    replicas of each primary they wrote to (:mod:`.replicas`). Raises
    InvalidStoreURL here for a bad URL, ValueError for a bad number.
    """
    if isinstance(url, str):
        url = parse_store_url(url)
    if pool_size < 1:
        raise ValueError(f"pool_size must be at least 1, got {pool_size}")
    ssl_context = tls_context(url)
    check_replicas(replicas, url)
    async with background_nursery() as nursery:
        store = ClusterStore(url, nursery, pool_size=pool_size, connect_timeout=connect_timeout,
                             command_timeout=command_timeout, retry_for=retry_for, ssl_context=ssl_context,
                             replicas=replicas)
        try:
            yield store
        finally:
            await store.aclose()
            nursery.cancel_scope.cancel()


__all__ = ["ClusterStore", "NotSent", "open_cluster_store"]
