"""RespStore: the Store protocol over RESP2, for Pogocache (or Redis).

``open_resp_store(url)`` yields a :class:`RespStore` whose connections live in
a nursery that the ``async with`` owns: nothing outlives it. Connections open
lazily, so a store whose server is down opens fine and its first command
raises StoreUnavailable.

Every command passes :data:`ALLOWED_COMMANDS` (Pogocache's command set) before
anything is sent, so code tested against Redis only uses what Pogocache has.
Concurrent tasks share pipelined connections (see :mod:`.resp_conn`).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio
from hiredis import pack_command
from trio.lowlevel import wait_task_rescheduled

from ..errors import StoreAuthError, StoreError, StoreUnavailable
from . import resp_commands
from .base import Batch, Key, Store, Value, as_bytes
from .nursery import background_nursery
from .replicas import check_acks, check_replicas, wait_command, wait_ms
from .resp_commands import (
    ALLOWED_COMMANDS,
    BatchPlan,
    Command,
    ReplyError,
    flatten,
    mget_commands,
    not_allowed,
    raw_command_name,
    set_command,
    store_error,
)
from .resp_conn import RespConnection
from .resp_open import open_stream, tls_context
from .sentinel import Primary, demoted, demoted_error, trio_probe
from .url import StoreURL, parse_store_url

__all__ = ["ALLOWED_COMMANDS", "RespStore", "open_resp_store"]

#: outstanding commands at which _pick looks past a connection
SPILL = 64
_BACKOFF_FIRST = 0.05  # seconds; doubles per failed connect, up to _BACKOFF_MAX
_BACKOFF_MAX = 2.0


class RespStore(Store):
    """The Store protocol over pipelined RESP2 connections (see module doc)."""

    def __init__(
        self,
        url: StoreURL,
        nursery: trio.Nursery,
        *,
        pool_size: int,
        connect_timeout: float,
        command_timeout: float,
        ssl_context: ssl.SSLContext | None,
        replicas: int = 0,
    ) -> None:
        self.kind = "pogocache" if url.scheme == "pogocache" else "redis"
        self._url = url
        # redis+sentinel://: the primary the sentinels name, found on connect
        self._primary = Primary(url) if url.sentinel else None
        self._replicas = replicas
        self._wait = wait_command(replicas, wait_ms(command_timeout))
        self._nursery = nursery
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: list[RespConnection] = []  # alive connections only
        self._growing = 0  # background connects under way
        self._connect_lock = trio.Lock()
        self._retry_at = 0.0  # trio time before which we do not reconnect
        self._delay = 0.0
        self._last_error: StoreError | None = None
        self._ssl = ssl_context
        self._closed = False

    # -- connections -------------------------------------------------------

    def _dropped(self, conn: RespConnection) -> None:
        if conn in self._pool:
            self._pool.remove(conn)
        if self._primary is not None:
            self._primary.lost()  # perhaps a failover: the next connect asks the sentinels

    def _demoted(self) -> StoreUnavailable:
        """The primary turned replica: drop every connection to it."""
        assert self._primary is not None
        self._primary.lost()
        for conn in list(self._pool):
            conn.close()
        return demoted_error(self._url)

    async def _open(self) -> RespConnection:
        """Open, AUTH and start one connection; updates the backoff state.

        Raises StoreUnavailable / StoreAuthError if it cannot.
        """
        try:
            target = self._url
            if self._primary is not None:
                target = await self._primary.get(
                    lambda p: trio_probe(p, self._connect_timeout, self._ssl))
            stream, parser = await open_stream(target, self._connect_timeout, self._ssl)
        except StoreError as exc:
            if self._primary is not None:
                self._primary.lost()  # the primary we knew is gone: ask again next time
            self._delay = min(max(self._delay * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
            self._retry_at = trio.current_time() + self._delay
            self._last_error = exc
            raise
        self._delay = 0.0
        conn = RespConnection(
            stream,
            parser,
            label=str(self._url),
            command_timeout=self._command_timeout,
            on_close=self._dropped,
        )
        await self._nursery.start(conn.serve)
        if self._closed:  # aclose() ran while we were connecting
            conn.close()
            raise StoreUnavailable(f"{self._url}: the store is closed")
        self._pool.append(conn)
        return conn

    async def _grow(self) -> None:
        # A background connect when every connection is busy; failures only
        # feed the backoff state, callers keep using the connections we have.
        try:
            await self._open()
        except StoreError:
            pass
        finally:
            self._growing -= 1

    async def _first_connection(self) -> RespConnection:
        """A connection when the pool is empty: connect, or fail fast in backoff."""
        async with self._connect_lock:
            if self._closed:
                raise StoreUnavailable(f"{self._url}: the store is closed")
            if self._pool:
                return self._pool[0]
            wait = self._retry_at - trio.current_time()
            if wait > 0:
                # Fail fast with the last connect error's kind (auth stays auth).
                kind = (
                    StoreAuthError
                    if isinstance(self._last_error, StoreAuthError)
                    else StoreUnavailable
                )
                raise kind(
                    f"{self._url}: not reconnecting for another {wait:.2f} s after: "
                    f"{self._last_error}"
                )
            return await self._open()

    def _pick(self) -> RespConnection | None:
        """The connection for the next command, or None if none is open.

        The first connection with fewer than SPILL commands outstanding wins:
        piling concurrent commands onto one connection lets them share one
        write and one read (the client's CPU, not the wire, is the limit),
        while a connection stuck behind a big batch or a slow command is
        passed over. When every connection is that busy, the least loaded
        one is used and another connection opens in the background.
        """
        pool = self._pool
        for conn in pool:
            if conn.outstanding < SPILL:
                return conn
        if not pool:
            return None
        best = min(pool, key=_load)
        if (
            len(pool) + self._growing < self._pool_size
            and not self._closed
            and trio.current_time() >= self._retry_at
        ):
            self._growing += 1
            self._nursery.start_soon(self._grow)
        return best

    # -- sending -------------------------------------------------------------

    async def _call(self, *cmd: Any) -> Any:
        """Send one command (allowlist-checked) and return its reply.

        Raises CommandNotAllowed before sending, StoreResponseError (or
        StoreAuthError) for an error reply, StoreUnavailable if the server
        cannot be reached or does not answer within the command timeout.
        """
        if cmd[0] not in ALLOWED_COMMANDS:
            raise not_allowed(cmd[0])
        data = pack_command(cmd)
        # The hot path, inlined: the first connection while it is not busy.
        pool = self._pool
        if pool and len((conn := pool[0]).pending) + conn.owed < SPILL:
            pass
        else:
            conn = self._pick() or await self._first_connection()
        reply = await wait_task_rescheduled(conn.submit(data))
        if type(reply) is ReplyError:
            if self._primary is not None and demoted(reply):
                raise self._demoted()
            raise store_error(reply)
        return reply

    async def _call_many(self, cmds: Sequence[Command], own: Sequence[Command] = ()) -> list[Any]:
        """Send ``cmds`` then ``own`` (Nexq's own commands, such as WAIT,
        past the allowlist) in one write on one connection; their raw
        replies in order.

        Error replies come back as ReplyError objects, for the caller to raise
        after looking at every reply.
        """
        for cmd in cmds:
            if cmd[0] not in ALLOWED_COMMANDS:
                raise not_allowed(cmd[0])
        data = b"".join([pack_command(cmd) for cmd in (*cmds, *own)])
        conn = self._pick() or await self._first_connection()
        replies = await wait_task_rescheduled(conn.submit_many(data, len(cmds) + len(own)))
        if self._primary is not None and any(demoted(r) for r in replies):
            raise self._demoted()
        return replies  # type: ignore[no-any-return]

    async def execute_command(self, *args: Any) -> Any:
        """Send one raw command and return its reply (bytes, int, list, None).

        Raises CommandNotAllowed, before sending anything, for a command
        Pogocache lacks or one that would change a pooled connection's state
        (AUTH, SELECT, MONITOR, QUIT); StoreResponseError for an error reply.
        """
        if not args:
            raise ValueError("execute_command needs a command name")
        return await self._call(raw_command_name(args[0]), *args[1:])

    async def execute(self, batch: Batch) -> list[Any]:
        plan = BatchPlan(batch)
        if batch.durable and self._replicas and plan.commands:
            # WAIT on the same connection, right behind the batch's writes.
            replies = await self._call_many(plan.commands, (self._wait,))
            answers = plan.answers(replies[:-1])
            check_acks(replies[-1], self._replicas, self._url)
            return answers
        replies = await self._call_many(plan.commands) if plan.commands else []
        return plan.answers(replies)

    # -- single primitives, without a Batch per call --------------------------

    async def get(self, key: Key) -> bytes | None:
        return await self._call("GET", key)  # type: ignore[no-any-return]

    async def set(self, key: Key, value: Value, *, nx: bool = False, xx: bool = False,
            px: int | None = None, get: bool = False, keepttl: bool = False) -> Any:
        if px is None and not (nx or xx or get or keepttl):
            if type(value) is not bytes:
                value = as_bytes(value)
            return await self._call("SET", key, value) is not None
        reply = await self._call(*set_command(key, value, nx, xx, px, get, keepttl))
        return reply if get else reply is not None

    async def mget(self, keys: Sequence[Key]) -> list[bytes | None]:
        if not keys:
            return []
        if len(keys) <= resp_commands.MGET_CHUNK:
            return await self._call("MGET", *keys)  # type: ignore[no-any-return]
        replies = await self._call_many(mget_commands(keys))
        for reply in replies:
            if type(reply) is ReplyError:
                raise store_error(reply)
        return flatten(replies)

    async def delete(self, *keys: Key) -> int:
        return await self._call("DEL", *keys) if keys else 0

    async def incrby(self, key: Key, amount: int = 1) -> int:
        return await self._call("INCRBY", key, amount)  # type: ignore[no-any-return]

    async def incr(self, key: Key) -> int:
        return await self._call("INCR", key)  # type: ignore[no-any-return]

    async def append(self, key: Key, value: Value) -> int:
        return await self._call("APPEND", key, as_bytes(value))  # type: ignore[no-any-return]

    async def exists(self, *keys: Key) -> int:
        return await self._call("EXISTS", *keys) if keys else 0

    async def expire(self, key: Key, seconds: int) -> bool:
        return bool(await self._call("EXPIRE", key, seconds) == 1)

    async def pttl(self, key: Key) -> int:
        return await self._call("PTTL", key)  # type: ignore[no-any-return]

    # -- operations ------------------------------------------------------------

    async def ping(self) -> float:
        start = trio.current_time()
        await self._call("PING")
        return trio.current_time() - start

    async def save(self) -> None:
        await self._call("SAVE")

    async def info(self) -> dict[str, str]:
        """kind, url, keys, and whatever STATS / VERSION answer (Pogocache only).

        Best effort: a command the server lacks (Redis has no STATS) is left
        out; raises StoreUnavailable only if the server cannot be reached.
        """
        out = {"kind": self.kind, "url": str(self._url)}
        dbsize, stats, version = await self._call_many([("DBSIZE",), ("STATS",), ("VERSION",)])
        if isinstance(dbsize, int):
            out["keys"] = str(dbsize)
        if isinstance(stats, list):
            for pair in stats:
                if isinstance(pair, list) and len(pair) == 2:
                    out[_text(pair[0])] = _text(pair[1])
        if isinstance(version, bytes):
            out["version"] = _text(version)
        return out

    async def aclose(self) -> None:
        """Close every connection; callers still waiting get StoreUnavailable."""
        self._closed = True
        conns = list(self._pool)
        for conn in conns:
            conn.close()
        # Wait (briefly, even if our caller is being cancelled) until their
        # sockets are really closed, so "closed" means released.
        with trio.move_on_after(1.0, shield=True):
            for conn in conns:
                await conn.finished.wait()


def _load(conn: RespConnection) -> int:
    return conn.outstanding


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@asynccontextmanager
async def open_resp_store(
    url: StoreURL | str,
    *,
    pool_size: int = 4,
    connect_timeout: float = 5.0,
    command_timeout: float = 10.0,
    replicas: int = 0,
) -> AsyncIterator[RespStore]:
    """A RespStore for the ``async with``; its connections close on exit.

    Does not connect: the first command does, and raises StoreUnavailable if
    the server is down (StoreAuthError if it rejects the password).
    ``connect_timeout`` bounds each connect (+AUTH); ``command_timeout``
    closes a connection whose outstanding commands got no answer for that
    long, failing them with StoreUnavailable. ``replicas``: durable
    batches wait for that many replicas (:mod:`.replicas`). Raises
    InvalidStoreURL (a bad URL, an unreadable ``ssl_ca_certs`` file,
    replicas on Pogocache) or ValueError (pool_size < 1, replicas < 0)
    here, before anything runs.
    """
    if isinstance(url, str):
        url = parse_store_url(url)
    if pool_size < 1:
        raise ValueError(f"pool_size must be at least 1, got {pool_size}")
    ssl_context = tls_context(url)  # before the nursery: a bad CA file raises plainly
    check_replicas(replicas, url)
    # The caller's own exception leaves unwrapped, as it does from the embedded store.
    async with background_nursery() as nursery:
        store = RespStore(
            url,
            nursery,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            ssl_context=ssl_context,
            replicas=replicas,
        )
        try:
            yield store
        finally:
            await store.aclose()
            # Whatever is still starting (a background connect) ends here too.
            nursery.cancel_scope.cancel()
