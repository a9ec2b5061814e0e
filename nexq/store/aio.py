"""The asyncio driver: planned protocol runs on pipelined asyncio connections.

:meth:`AioPool.run` drives one queue-protocol coroutine over a
:class:`~.planned.PlannedStore` to its end in the running event loop: each
yielded Batch is written to a connection and awaited as one future, each
Sleep is an ``asyncio.sleep``. Native asyncio (protocols and transports,
the layer under asyncio streams), no trio, no threads.

Connections are pipelined and shared, as RespStore's are under trio: any
number of runs write onto one connection and its replies resolve their
futures in FIFO order as they arrive (hiredis parses them). A run picks,
per round trip, the first connection with fewer than ``SPILL`` commands
outstanding; when all are that busy another opens in the background, up to
``size``. A connection whose outstanding commands got no reply for
``timeout`` seconds is closed and its callers get StoreUnavailable. A pool
belongs to the event loop it is first used on.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from hiredis import ProtocolError

from ..errors import StoreError, StoreUnavailable
from .cluster_slots import NotSent
from .planned import Request, Sleep, Steps, Wait, shielded, unshield
from .resp_commands import Command
from .resp_conn import new_parser
from .resp_open import tls_context
from .sentinel import Primary, Probe, demoted, demoted_error
from .transport import (
    SPILL,
    Backoff,
    auth_commands,
    check_auth,
    commands_of,
    connect_failed,
    pack,
    wait_for,
)
from .url import StoreURL

T = TypeVar("T")


class AioConnection(asyncio.Protocol):
    """One pipelined RESP2 connection on an asyncio transport."""

    def __init__(self, label: str, timeout: float) -> None:
        self.label, self.timeout = label, timeout
        self.loop = asyncio.get_running_loop()
        self.parser = new_parser()
        self.waiting: deque[tuple[asyncio.Future[list[Any]], int, list[Any]]] = deque()
        self.outstanding = 0  # commands sent and not yet answered
        self.transport: asyncio.Transport | None = None
        self.error: StoreError | None = None
        self._heard = 0.0  # loop time of the last reply (or of the first wait since)
        self._watchdog: asyncio.TimerHandle | None = None
        self._out: list[bytes] = []  # writes queued for the end of this loop iteration

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed(data)
            self._heard = self.loop.time()
            waiting, gets = self.waiting, self.parser.gets
            while waiting:
                fut, n, got = waiting[0]
                while len(got) < n:
                    reply = gets()
                    if reply is False:
                        return
                    got.append(reply)
                waiting.popleft()
                self.outstanding -= n
                if not fut.done():  # a cancelled caller's replies are read and dropped
                    fut.set_result(got)
            if gets() is not False:
                self.fail("the server sent a reply nobody asked for")
        except ProtocolError as exc:
            self.fail(f"protocol error: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(f"connection lost: {exc}" if exc else "the server closed the connection")

    # -- calls -----------------------------------------------------------------------

    def call(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """Send ``commands`` in one write; a future of their raw replies in
        order (error replies as ReplyError objects). Raises
        CommandNotAllowed (nothing sent) or this connection's StoreUnavailable."""
        data = pack(commands)
        if self.error is not None:
            raise StoreUnavailable(str(self.error))
        assert self.transport is not None
        fut: asyncio.Future[list[Any]] = self.loop.create_future()
        if not self.waiting:
            self._heard = self.loop.time()
            if self._watchdog is None:
                self._watchdog = self.loop.call_later(self.timeout, self._watch)
        self.waiting.append((fut, len(commands), []))
        if self.outstanding == 0:
            self.transport.write(data)  # an idle connection: no reason to wait
        else:
            # Busy: what the callers of this loop iteration send goes out in
            # one write (one syscall, where a write per caller costs more
            # than the server's work on it).
            if not self._out:
                self.loop.call_soon(self._flush)
            self._out.append(data)
        self.outstanding += len(commands)
        return fut

    def _flush(self) -> None:
        data, self._out = b"".join(self._out), []
        if self.transport is not None and self.error is None:
            self.transport.write(data)

    def _watch(self) -> None:
        self._watchdog = None
        if not self.waiting or self.error is not None:
            return
        quiet = self.loop.time() - self._heard
        if quiet >= self.timeout:
            self.fail(f"no reply within {self.timeout:g} s (command timeout); connection closed")
        else:
            self._watchdog = self.loop.call_later(self.timeout - quiet, self._watch)

    def fail(self, why: str) -> None:
        """Close the connection; every waiting caller gets StoreUnavailable."""
        if self.error is None:
            self.error = StoreUnavailable(f"{self.label}: {why}")
        while self.waiting:
            fut, _, _ = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(StoreUnavailable(str(self.error)))
        self.outstanding = 0
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.transport is not None:
            self.transport.close()


async def open_connection(url: StoreURL, timeout: float, ssl_context: Any) -> AioConnection:
    """Dial ``url`` and AUTH, each within ``timeout`` s. Raises
    StoreUnavailable or StoreAuthError."""
    loop = asyncio.get_running_loop()
    conn = AioConnection(str(url), timeout)
    try:
        async with asyncio.timeout(timeout):
            if url.scheme == "unix":
                await loop.create_unix_connection(lambda: conn, url.path)
            else:
                await loop.create_connection(lambda: conn, url.host, url.port, ssl=ssl_context,
                                             server_hostname=url.host if ssl_context else None)
        auth = auth_commands(url)
        if auth:
            async with asyncio.timeout(timeout):
                check_auth((await conn.call(auth))[0])
    except (OSError, TimeoutError, StoreError) as exc:
        conn.fail("connect failed")
        raise connect_failed(url, exc, timeout) from None
    return conn


class AioPool:
    """Drives planned protocol runs on shared asyncio connections (see module doc)."""

    def __init__(self, url: StoreURL, *, size: int = 4, timeout: float = 5.0, replicas: int = 0) -> None:
        """Does not connect: the first store call does. ``replicas``: durable
        batches wait for that many (:mod:`.replicas`). Raises InvalidStoreURL
        (unreadable ``ssl_ca_certs``, replicas on Pogocache) or ValueError."""
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        self.url, self.size, self.timeout = url, size, timeout
        self._ssl = tls_context(url)
        self._wait = wait_for(replicas, url, timeout)
        # redis+sentinel://: the primary the sentinels name, found on connect
        self._primary = Primary(url) if url.sentinel else None
        self._conns: list[AioConnection] = []
        self._growing: set[asyncio.Task[None]] = set()
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backoff = Backoff(url)
        self.closed = False

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` (queue code over a PlannedStore) to its end and
        return its result; what it raises propagates (its store calls raise
        StoreUnavailable as on any store)."""
        with Steps(coro) as steps:
            self._bind()
            for request in steps:
                if shielded():
                    # An enqueue group's write, which its members wait for:
                    # finished by a task of its own, so that cancelling this
                    # caller (as trio's shield does) does not fail them.
                    steps.detached = True
                    task = asyncio.get_running_loop().create_task(self._finish(steps, request))
                    task.add_done_callback(_retrieve)
                    unshield()
                    return await asyncio.shield(task)
                try:
                    steps.answer(await self._perform(request))
                except Exception as exc:  # noqa: BLE001 - the store call's error, raised inside coro
                    steps.fail(exc)
        return steps.result  # type: ignore[no-any-return]

    async def _finish(self, steps: Steps, request: Request) -> Any:
        """Drive detached ``steps`` from ``request`` (already yielded) to its end."""
        try:
            while True:
                try:
                    steps.answer(await self._perform(request))
                except Exception as exc:  # noqa: BLE001 - the store call's error, raised inside coro
                    steps.fail(exc)
                try:
                    request = next(steps)
                except StopIteration:
                    return steps.result
        finally:
            steps.close()

    async def _perform(self, request: Request) -> Any:
        if isinstance(request, Sleep):
            await asyncio.sleep(request.seconds)
            return None
        if isinstance(request, Wait):  # an enqueue group's member, until its leader wrote the group
            if not request.signal.is_set:
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                request.signal.on_set(lambda: _resolve(fut))
                await fut
            return None
        commands, finish = commands_of(request, self._wait, self.url)
        return finish(await self._call(commands) if commands else [])

    async def _call(self, commands: Sequence[Command]) -> list[Any]:
        conn = self._pick() or await self._first()
        if self._primary is None:
            return await conn.call(commands)
        try:
            replies = await conn.call(commands)
        except StoreUnavailable:
            self._primary.lost()  # perhaps a failover: the next connect asks the sentinels
            raise
        if any(demoted(r) for r in replies):  # the primary turned replica
            self._primary.lost()
            for other in self._conns:
                other.fail("the server is no longer the primary")
            raise demoted_error(self.url)
        return replies

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` on a shared connection (dialled if none); their
        raw replies. Raises NotSent if no connection could be had (nothing
        was sent: a cluster driver retries elsewhere), StoreUnavailable if
        the exchange failed."""
        try:
            conn = self._pick() or await self._first()
        except StoreUnavailable as exc:
            raise NotSent(str(exc)) from exc
        return await conn.call(commands)

    async def _probe(self, probe: Probe) -> list[Any]:
        conn = await open_connection(probe.url, self.timeout, self._ssl)
        try:
            return await conn.call(probe.commands)
        finally:
            conn.fail("done")

    def _pick(self) -> AioConnection | None:
        conns = self._conns
        for conn in conns:
            if conn.error is None and conn.outstanding < SPILL:
                return conn
        live = [c for c in conns if c.error is None]
        if len(live) != len(conns):
            self._conns = conns = live
        if not conns:
            return None
        if len(conns) + len(self._growing) < self.size and not self.closed:
            task = asyncio.get_running_loop().create_task(self._grow())
            self._growing.add(task)
            task.add_done_callback(self._growing.discard)
        return min(conns, key=_load)

    def _bind(self) -> asyncio.Lock:
        """The connect lock of the loop this pool belongs to (the running
        one, on first use); RuntimeError on another loop."""
        loop = asyncio.get_running_loop()
        if self._loop is None or self._lock is None:
            self._loop, self._lock = loop, asyncio.Lock()
        elif self._loop is not loop:
            raise RuntimeError("this AsyncClient is bound to the event loop it was first used on; "
                               "make one AsyncClient per event loop")
        return self._lock

    async def _open(self) -> AioConnection:
        self._backoff.check()
        try:
            target = self.url if self._primary is None else await self._primary.get(self._probe)
            conn = await open_connection(target, self.timeout, self._ssl)
        except StoreError as exc:
            if self._primary is not None:
                self._primary.lost()  # the primary we knew is gone: ask again next time
            self._backoff.failed(exc)
            raise
        self._backoff.connected()
        if self.closed:
            conn.fail("the client is closed")
            raise StoreUnavailable(f"{self.url}: the client is closed")
        self._conns.append(conn)
        return conn

    async def _grow(self) -> None:
        # Every connection is busy: one more, in the background; a failure
        # only feeds the backoff, callers keep the connections they have.
        try:
            await self._open()
        except (StoreError, RuntimeError):
            pass

    async def _first(self) -> AioConnection:
        """A connection when none is open: dial one (callers arriving
        meanwhile wait for it), or fail fast in backoff."""
        if self.closed:
            raise StoreUnavailable(f"{self.url}: the client is closed")
        async with self._bind():
            return self._pick() or await self._open()

    async def aclose(self) -> None:
        """Close every connection; callers still waiting get StoreUnavailable."""
        self.closed = True
        for task in list(self._growing):
            task.cancel()
        for conn in self._conns:
            conn.fail("the client is closed")
        self._conns = []
        await asyncio.sleep(0)  # let the transports close


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A shielded write whose caller left: its outcome reached the members.
    if not task.cancelled():
        task.exception()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():  # a run closed while it waited leaves its future cancelled
        fut.set_result(None)


def _load(conn: AioConnection) -> int:
    return conn.outstanding
