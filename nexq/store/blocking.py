"""The blocking driver: planned protocol runs on blocking sockets, for threads.

:meth:`BlockingPool.run` drives one queue-protocol coroutine over a
:class:`~.planned.PlannedStore` to its end in the calling thread: each
yielded Batch becomes one write and the reads of its replies on one
connection, each Sleep a ``time.sleep``. No event loop, no thread hop: a
round trip costs packing, one ``sendall``, ``recv`` and parsing (hiredis).

The pool is thread-safe: a run takes an idle connection (or dials one) for
its whole length and gives it back, so threads never share a connection
mid-run. At most ``size`` idle connections are kept; more are opened under
load and closed when given back. A connection is dropped when an exchange
on it did not finish (error, timeout, interrupt) or when the server closed
it while idle; a forked child forgets its parent's connections.
"""

from __future__ import annotations

import os
import select
import socket
import time
import weakref
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from hiredis import ProtocolError

from ..errors import StoreError, StoreUnavailable
from .cluster_slots import NotSent
from .planned import Request, Sleep, Steps, Wait
from .resp_commands import Command
from .resp_conn import new_parser
from .resp_open import tls_context
from .sentinel import Primary, Probe, demoted, demoted_error
from .transport import (
    RECEIVE_SIZE,
    Backoff,
    auth_commands,
    check_auth,
    commands_of,
    connect_failed,
    pack,
    reason,
    wait_for,
)
from .url import StoreURL

T = TypeVar("T")


class BlockingConnection:
    """One RESP2 connection on a blocking socket (one user at a time)."""

    def __init__(self, url: StoreURL, timeout: float, ssl_context: Any = None) -> None:
        """Dial ``url`` and AUTH within ``timeout`` s each. Raises
        StoreUnavailable (refused, no socket, TLS failure, timeout) or
        StoreAuthError."""
        self.url, self.timeout = url, timeout
        self.parser = new_parser()
        self.broken = False  # an exchange did not finish: the stream is out of step
        try:
            self.sock = _dial(url, timeout, ssl_context)
        except OSError as exc:
            raise connect_failed(url, exc, timeout) from None
        auth = auth_commands(url)
        if auth:
            try:
                check_auth(self.call(auth)[0])
            except StoreError:
                self.close()
                raise

    def call(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write; their raw replies in order (error
        replies as ReplyError objects). Raises CommandNotAllowed (nothing
        sent) or StoreUnavailable (the connection is then broken)."""
        data = pack(commands)
        self.broken = True  # until every reply is read
        try:
            self.sock.sendall(data)
            replies = self._read(len(commands))
        except TimeoutError:
            raise StoreUnavailable(f"{self.url}: no reply within {self.timeout:g} s (command timeout)") from None
        except (OSError, ProtocolError) as exc:
            if isinstance(exc, StoreError):
                raise
            raise StoreUnavailable(f"{self.url}: connection lost: {reason(exc)}") from None
        self.broken = False
        return replies

    def _read(self, n: int) -> list[Any]:
        parser = self.parser
        out: list[Any] = []
        while len(out) < n:
            reply = parser.gets()
            if reply is False:
                data = self.sock.recv(RECEIVE_SIZE)
                if not data:
                    raise StoreUnavailable(f"{self.url}: the server closed the connection")
                parser.feed(data)
            else:
                out.append(reply)
        return out

    def idle_ok(self) -> bool:
        """Whether an idle connection is still usable: not broken, and the
        server has not closed it (nothing may be readable while idle)."""
        if self.broken:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        self.broken = True
        try:
            self.sock.close()
        except OSError:
            pass


def _dial(url: StoreURL, timeout: float, ssl_context: Any) -> socket.socket:
    if url.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(url.path)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((url.host, url.port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a round trip is one small write
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=url.host)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(timeout)
    return sock


class BlockingPool:
    """Drives planned protocol runs on pooled blocking connections (see module doc)."""

    def __init__(self, url: StoreURL, *, size: int = 8, timeout: float = 5.0, replicas: int = 0) -> None:
        """Does not connect: the first store call does. ``timeout`` bounds
        each connect (+AUTH) and each wait for a reply. ``replicas``:
        durable batches wait for that many (:mod:`.replicas`). Raises
        InvalidStoreURL (unreadable ``ssl_ca_certs``, replicas on
        Pogocache) or ValueError."""
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size}")
        self.url, self.size, self.timeout = url, size, timeout
        self._ssl = tls_context(url)
        self._wait = wait_for(replicas, url, timeout)
        # redis+sentinel://: the primary the sentinels name, found on connect
        self._primary = Primary(url) if url.sentinel else None
        self._idle: deque[BlockingConnection] = deque()
        self._backoff = Backoff(url)
        self.closed = False
        _POOLS.add(self)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` (queue code over a PlannedStore) to its end in this
        thread and return its result; what it raises propagates. Its store
        calls raise StoreUnavailable as on any store."""
        held: list[BlockingConnection] = []  # the run's connection, taken at its first command
        try:
            with Steps(coro) as steps:
                for request in steps:
                    try:
                        steps.answer(self._perform(request, held))
                    except Exception as exc:  # noqa: BLE001 - the store call's error, raised inside coro
                        steps.fail(exc)
            return steps.result  # type: ignore[no-any-return]
        finally:
            for conn in held:
                self._give(conn)

    def _perform(self, request: Request, held: list[BlockingConnection]) -> Any:
        if isinstance(request, Sleep):
            time.sleep(request.seconds)
            return None
        if isinstance(request, Wait):
            if not request.signal.is_set:  # only another run of this thread could set it: never
                raise TypeError("a blocking run cannot wait for another run: give each thread its own broker")
            return None
        commands, finish = commands_of(request, self._wait, self.url)
        if not commands:
            return finish([])
        if not held:
            held.append(self._take())
        if self._primary is None:
            return finish(held[0].call(commands))
        try:
            replies = held[0].call(commands)
        except StoreUnavailable:
            self._primary.lost()  # perhaps a failover: the next connect asks the sentinels
            raise
        if any(demoted(r) for r in replies):  # the primary turned replica
            self._primary.lost()
            held[0].broken = True
            self._forget()
            raise demoted_error(self.url)
        return finish(replies)

    def send(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` on an idle connection (dialled if none); their
        raw replies. Raises NotSent if no connection could be had (nothing
        was sent: a cluster driver retries elsewhere), StoreUnavailable if
        the exchange failed."""
        try:
            conn = self._take()
        except StoreUnavailable as exc:
            raise NotSent(str(exc)) from exc
        try:
            return conn.call(commands)
        finally:
            self._give(conn)

    def _probe(self, probe: Probe) -> list[Any]:
        conn = BlockingConnection(probe.url, self.timeout, self._ssl)
        try:
            return conn.call(probe.commands)
        finally:
            conn.close()

    def _take(self) -> BlockingConnection:
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                break
            if conn.idle_ok():
                return conn
            conn.close()
        if self.closed:
            raise StoreUnavailable(f"{self.url}: the client is closed")
        self._backoff.check()
        try:
            target = self.url if self._primary is None else self._primary.sync(self._probe)
            conn = BlockingConnection(target, self.timeout, self._ssl)
        except StoreError as exc:
            if self._primary is not None:
                self._primary.lost()  # the primary we knew is gone: ask again next time
            self._backoff.failed(exc)
            raise
        self._backoff.connected()
        return conn

    def _give(self, conn: BlockingConnection) -> None:
        if conn.broken or self.closed or len(self._idle) >= self.size:
            conn.close()
        else:
            self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections; runs under way close theirs when done."""
        self.closed = True
        self._forget()

    def _forget(self) -> None:
        while self._idle:
            try:
                self._idle.pop().close()
            except IndexError:
                break


_POOLS: weakref.WeakSet[BlockingPool] = weakref.WeakSet()


def _after_fork() -> None:
    # A child must not talk on its parent's sockets: replies would interleave.
    for pool in list(_POOLS):
        pool._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
