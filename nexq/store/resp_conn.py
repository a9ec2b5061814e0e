"""One RESP2 connection under trio: auto-pipelining, FIFO replies, failure.

A :class:`RespConnection` owns a connected socket and three background tasks
(reader, writer, watchdog) that run inside the store's nursery. Callers from
any number of trio tasks hand it packed commands; the writer coalesces
everything queued since its last send into one write and the reader hands
each reply to the caller that is next in line, in FIFO order.

Plain TCP and unix connections are driven as raw non-blocking sockets with
``trio.lowlevel.wait_readable``/``wait_writable``: that skips the stream
layers' checkpoints and lets callers write without an await: on an idle
connection a caller writes its own command (no writer wake-up on a
sequential round trip), and once FLUSH commands are queued the caller that
queued the last one writes them all. TLS keeps ``trio.SSLStream``.

The hot path avoids per-command objects beyond the packed bytes and one
``outcome.Value``: a single-command caller is queued as its own
:class:`trio.lowlevel.Task` and parks with ``wait_task_rescheduled``; the
reader reschedules it with the reply. A caller cancelled while parked leaves
a ``None`` in its place so its reply is still read and discarded, keeping the
stream in step.
"""

from __future__ import annotations

import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
import outcome
import trio
from trio.lowlevel import (
    Abort,
    Task,
    current_task,
    notify_closing,
    reschedule,
    wait_readable,
    wait_task_rescheduled,
    wait_writable,
)

from ..errors import StoreUnavailable
from .resp_commands import ReplyError

#: errors a broken transport surfaces as (trio wraps most OSErrors itself)
TRANSPORT_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError)

_RECEIVE_SIZE = 65536
#: queued commands at which a caller writes them out itself instead of leaving
#: them to the writer: the server starts on them while later callers are still
#: running, which keeps a busy client's CPU from idling through the round trip
FLUSH = 32


def new_parser() -> hiredis.Reader:
    """A hiredis reader that returns error replies as ReplyError objects."""
    return hiredis.Reader(replyError=ReplyError)


class _Multi:
    """The waiter for a run of ``n`` consecutive replies (a batch)."""

    __slots__ = ("task", "n", "replies")

    def __init__(self, task: Task, n: int) -> None:
        self.task: Task | None = task
        self.n = n
        self.replies: list[Any] = []


# What the pending queue holds: the task waiting for one reply, a _Multi for a
# batch, or None where the caller gave up (its reply is read and dropped).
_Waiter = Task | _Multi | None


class RespConnection:
    """One pipelined RESP2 connection; see the module docstring.

    ``on_close`` is called once, as soon as the connection is known to be
    dead, so the pool stops handing it out.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        parser: hiredis.Reader,
        *,
        label: str,
        command_timeout: float,
        on_close: Callable[[RespConnection], None],
    ) -> None:
        self._stream = stream
        self._sock: socket.socket | None = None
        if isinstance(stream, trio.SocketStream):
            # Take the connected socket out of the stream (detach is public)
            # so it can be written without an await; TCP_NODELAY stays set.
            self._sock = socket.socket(fileno=stream.socket.detach())
            self._sock.setblocking(False)
        self._parser = parser
        self._label = label
        self._timeout = command_timeout
        self._on_close = on_close
        # Read-only outside this class: the pool reads len(pending) + owed as
        # the load without a call on its hot path.
        self.pending: deque[_Waiter] = deque()
        self.owed = 0  # replies owed to batches beyond one per batch
        self._outbuf: list[bytes] = []
        self._writer_task: Task | None = None
        self._writer_parked = False  # parked <=> nothing queued or half-sent
        self._writing = False  # the writer waits to finish a half-sent buffer
        self._progress = 0  # bumped on every receive and send: the watchdog's pulse
        self._scope = trio.CancelScope()
        self.alive = True
        self.finished = trio.Event()  # set once the socket is closed

    @property
    def outstanding(self) -> int:
        """Commands sent or queued whose replies have not arrived yet."""
        return len(self.pending) + self.owed

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the reader, writer and watchdog until the connection ends.

        Never raises for transport trouble: callers waiting at that moment get
        StoreUnavailable and the pool is told through ``on_close``.
        """
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._reader)
                    nursery.start_soon(self._writer)
                    nursery.start_soon(self._watchdog)
                    task_status.started()
        finally:
            self._die("the connection was closed")
            if self._sock is not None:
                notify_closing(self._sock)
                self._sock.close()
            await trio.aclose_forcefully(self._stream)
            self.finished.set()

    def close(self) -> None:
        """Close the connection; waiting callers get StoreUnavailable."""
        self._die("the connection was closed by the client")

    def submit(self, data: bytes) -> Callable[[Any], Abort]:
        """Queue one packed command for the current task; return its abort callback.

        The caller must park at once with ``await wait_task_rescheduled(abort)``
        (no checkpoint in between): the reader reschedules it with the reply,
        an error reply as a ReplyError object, or with StoreUnavailable if
        the connection fails first. Splitting queueing from parking saves a
        coroutine layer per command. Raises StoreUnavailable if the
        connection is dead. A caller cancelled while parked leaves its
        command to run on the server; its reply is read and dropped.
        """
        if not self.alive:
            raise StoreUnavailable(f"{self._label}: connection lost")
        task = current_task()
        if self._writer_parked and not self.pending and self._sock is not None:
            # Idle connection: write now instead of waking the writer (saves a
            # task switch on every sequential round trip).
            self._write_now(data)
        else:
            outbuf = self._outbuf
            outbuf.append(data)
            if self._writer_parked:
                self._wake_writer()
            elif len(outbuf) >= FLUSH and not self._writing and self._sock is not None:
                self._outbuf = []
                self._write_now(b"".join(outbuf))
        self.pending.append(task)

        def abort(_: Any) -> Abort:
            self._forget(task)
            return Abort.SUCCEEDED

        return abort

    def submit_many(self, data: bytes, n: int) -> Callable[[Any], Abort]:
        """Like submit, for ``n`` packed commands; the reply is their list."""
        if not self.alive:
            raise StoreUnavailable(f"{self._label}: connection lost")
        waiter = _Multi(current_task(), n)
        if self._writer_parked and not self.pending and self._sock is not None:
            self._write_now(data)  # idle connection: as in submit
        else:
            self._outbuf.append(data)
            if self._writer_parked:
                self._wake_writer()
        self.pending.append(waiter)
        self.owed += n - 1

        def abort(_: Any) -> Abort:
            waiter.task = None  # keep counting its replies, drop them
            return Abort.SUCCEEDED

        return abort

    def _write_now(self, data: bytes) -> None:
        # Only called while the writer is parked, so nothing is half-sent.
        assert self._sock is not None
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._die(f"connection lost: {exc!r}", exc)
            raise StoreUnavailable(f"{self._label}: connection lost: {exc}") from exc
        self._progress += 1
        if sent < len(data):
            self._outbuf.insert(0, data[sent:])
            if self._writer_parked:
                self._wake_writer()

    def _wake_writer(self) -> None:
        # Only while parked: a task must be rescheduled exactly once per park.
        self._writer_parked = False
        assert self._writer_task is not None  # set before the writer first parks
        reschedule(self._writer_task)

    def _forget(self, task: Task) -> None:
        # Cancellation is rare, so a linear search beats a per-command wrapper.
        pending = self.pending
        for i in range(len(pending) - 1, -1, -1):
            if pending[i] is task:
                pending[i] = None
                return

    def _die(self, why: str, cause: BaseException | None = None) -> None:
        """Mark the connection dead and fail everyone still waiting on it."""
        if not self.alive:
            return
        self.alive = False
        self._scope.cancel()
        # Cancelling the scope above already woke a parked writer (its abort).
        self._outbuf.clear()
        msg = f"{self._label}: {why}"
        for w in self.pending:
            task = w.task if isinstance(w, _Multi) else w
            if task is not None:
                exc = StoreUnavailable(msg)
                exc.__cause__ = cause
                reschedule(task, outcome.Error(exc))
        self.pending.clear()
        self.owed = 0
        self._on_close(self)

    def _dispatch(self, data: bytes | bytearray) -> None:
        """Parse ``data`` and hand every complete reply to its waiter."""
        self._progress += 1
        self._parser.feed(data)  # type: ignore[arg-type]  # hiredis takes any buffer
        gets = self._parser.gets
        pending = self.pending
        popleft = pending.popleft
        wake, value, task_type = reschedule, outcome.Value, Task  # locals: hot loop
        while (reply := gets()) is not False:
            w = popleft()
            if type(w) is task_type:
                wake(w, value(reply))
            elif w is not None:
                multi = cast(_Multi, w)
                multi.replies.append(reply)
                if len(multi.replies) < multi.n:
                    self.owed -= 1
                    pending.appendleft(multi)  # more replies of this batch to come
                elif multi.task is not None:
                    wake(multi.task, value(multi.replies))

    async def _reader(self) -> None:
        sock = self._sock
        receive = self._stream.receive_some
        dispatch = self._dispatch
        data: bytes | bytearray
        try:
            while True:
                if sock is not None:
                    # Waiting first also makes this loop yield every time.
                    await wait_readable(sock)
                    try:
                        data = sock.recv(_RECEIVE_SIZE)
                    except BlockingIOError:
                        continue
                else:
                    data = await receive(_RECEIVE_SIZE)
                if not data:
                    self._die("the server closed the connection")
                    return
                dispatch(data)
        except TRANSPORT_ERRORS as exc:
            self._die(f"connection lost: {exc!r}", exc)
        except hiredis.ProtocolError as exc:
            self._die(f"protocol error: {exc}", exc)
        except IndexError as exc:
            self._die("the server sent a reply nobody asked for", exc)

    def _writer_abort(self, _: Any) -> Abort:
        self._writer_parked = False
        return Abort.SUCCEEDED

    async def _writer(self) -> None:
        self._writer_task = current_task()
        sock = self._sock
        send_all = self._stream.send_all
        try:
            while True:
                buf = self._outbuf
                if not buf:
                    self._writer_parked = True
                    await wait_task_rescheduled(self._writer_abort)
                    continue
                # Everything queued since the last write goes out together.
                self._outbuf = []
                data = buf[0] if len(buf) == 1 else b"".join(buf)
                if sock is None:
                    await send_all(data)
                else:
                    view = memoryview(data)
                    while view:
                        try:
                            view = view[sock.send(view) :]
                        except BlockingIOError:
                            self._writing = True
                            await wait_writable(sock)
                    self._writing = False
                self._progress += 1
        except TRANSPORT_ERRORS as exc:
            self._die(f"connection lost: {exc!r}", exc)

    async def _watchdog(self) -> None:
        # A per-command cancel scope costs a deadline registration on every
        # call; instead one task notices when commands are outstanding and
        # nothing has moved on the connection for command_timeout seconds.
        timeout = self._timeout
        tick = min(max(timeout / 10, 0.005), 0.5)
        since: float | None = None
        seen = -1
        while True:
            await trio.sleep(tick)
            if not self.pending:
                since = None
                continue
            now = trio.current_time()
            if since is None or self._progress != seen:
                since, seen = now, self._progress
            elif now - since >= timeout:
                self._die(f"no reply within {timeout:g} s (command timeout); connection closed")
                return
