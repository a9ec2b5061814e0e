"""A bounded pool of handler processes for ``@app.task(executor="process")``.

A CPU-bound handler in a thread holds the GIL against the worker's own trio
loop; here it runs in a child process (:mod:`.process_child`), one task at
a time per child, at most ``size`` children per worker.

Why our own pipe protocol with trio processes rather than
``concurrent.futures.ProcessPoolExecutor`` or ``multiprocessing.Pool``
behind ``trio.to_thread``: those cannot stop one running call. A future
that has started cannot be cancelled, and the only way to stop its work is
to tear down the whole pool, killing the other tasks' calls with it; the
waiting thread, too, can only be abandoned. Here each call owns its child
while it runs: when the caller's cancel scope fires (the task's timeout, a
cancel request, a lost lease, shutdown) the child is killed with SIGKILL at
that moment, reaped, and a fresh one is started for the next task, so a
timed-out attempt ends ``timeout`` exactly when its deadline passes and
nothing keeps burning a core after it. Children are started with
``subprocess`` (fork + exec of a fresh interpreter, never a fork of the trio
process) in their own process group, so a terminal's Ctrl-C reaches only
the worker, which decides.

The handler crosses as ``module:qualname`` (imported in the child), the
payload and the result as JSON; an exception in the child comes back as its
type name, message and traceback text and fails the attempt like a local
one. A child is replaced after ``max_tasks_per_child`` tasks (memory a
handler leaks goes with it).
"""

from __future__ import annotations

import inspect
import logging
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import trio

from ..codec import dumps, loads
from ..errors import Defer, Retry

log = logging.getLogger("nexq.process_pool")
HEADER = struct.Struct(">I")  # a frame: this length, then that many bytes of JSON
CHILD = [sys.executable, "-m", "nexq.runtime.process_child"]
RETIRE_WAIT = 2.0  # seconds a retired child gets to exit on its own before it is killed


def handler_target(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of ``fn``, for a child process to import; raises
    ValueError when another process could not import it by that name."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not inspect.isfunction(fn) or not module or "<" in qualname or module == "__main__":
        where = "defined in __main__" if module == "__main__" else "not a module-level function"
        raise ValueError(f"executor='process' runs the handler in another process, which imports it by "
                         f"module path: {qualname or fn!r} is {where}; define it at the top level of a module")
    return f"{module}:{qualname}"


class HandlerProcessError(Exception):
    """An exception a handler raised in its process. Each original type
    name gets a subclass of that name, so the attempt records it."""


class HandlerProcessDied(HandlerProcessError):
    """The handler's process exited (or was killed from outside) mid-task."""


class _RemoteTraceback(Exception):
    # Chained as the __cause__: the child's traceback text then appears in
    # the attempt's traceback, above the worker's own frames.
    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


_by_name: dict[str, type[HandlerProcessError]] = {}


def remote_error(reply: dict[str, Any]) -> Exception:
    """The exception to raise in the worker for a failure ``reply``."""
    if reply.get("kind") == "retry":
        return Retry(reply.get("delay"), reply.get("reason") or "retry requested")
    if reply.get("kind") == "defer":
        return Defer(reply.get("delay") or 0.0, reply.get("reason") or "deferred")
    name = str(reply.get("type") or "Exception")
    cls = _by_name.get(name)
    if cls is None:
        cls = _by_name[name] = type(name, (HandlerProcessError,), {"__module__": "nexq.process"})
    exc = cls(reply.get("message") or "")
    if reply.get("traceback"):
        exc.__cause__ = _RemoteTraceback(reply["traceback"])
    return exc


class _Child:
    """One handler process and its two pipes."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc, self.tasks = proc, 0
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin, self.stdout = proc.stdin, proc.stdout

    async def send(self, body: bytes) -> None:
        await self.stdin.send_all(HEADER.pack(len(body)) + body)

    async def receive(self) -> Any:
        """The next reply; HandlerProcessDied if the child is gone."""
        (size,) = HEADER.unpack(await self._exactly(HEADER.size))
        return loads(await self._exactly(size))

    async def _exactly(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = await self.stdout.receive_some(n - len(buf))
            if not chunk:
                code = await self.proc.wait()
                raise HandlerProcessDied(f"the handler's process (pid {self.proc.pid}) exited with "
                                         f"code {code} while running it")
            buf += chunk
        return bytes(buf)

    async def kill(self) -> None:
        """SIGKILL, reaped; safe to call in any state, never blocks long."""
        with trio.CancelScope(shield=True):
            if self.proc.returncode is None:
                self.proc.kill()
            await self.proc.wait()
            await self.stdin.aclose()
            await self.stdout.aclose()

    async def retire(self) -> None:
        """Let it exit on its own (EOF on stdin), killed if it lingers."""
        with trio.CancelScope(shield=True):
            await self.stdin.aclose()
            with trio.move_on_after(RETIRE_WAIT):
                await self.proc.wait()
            await self.kill()


class ProcessPool:
    """At most ``size`` handler processes, started on demand and kept idle
    between tasks; each is replaced after ``max_tasks_per_child`` tasks."""

    def __init__(self, size: int, max_tasks_per_child: int = 1000) -> None:
        if size < 1 or max_tasks_per_child < 1:
            raise ValueError("a process pool needs size and max_tasks_per_child of at least 1")
        self.size, self.max_tasks_per_child = size, max_tasks_per_child
        self._limiter = trio.CapacityLimiter(size)
        self._idle: list[_Child] = []
        self._children: set[_Child] = set()
        self.started = 0  # children started so far (replacements included)

    @property
    def pids(self) -> list[int]:
        """The pids of the live children, busy or idle."""
        return sorted(c.proc.pid for c in self._children)

    async def run(self, target: str, payload: Any) -> Any:
        """Run ``target`` (``module:qualname``) on ``payload`` in a child and
        return its result. Raises what the handler raised (as a
        HandlerProcessError subclass of the same name; Retry and Defer as
        themselves), HandlerProcessDied if the child died. On cancellation
        the child is killed before Cancelled propagates."""
        request = dumps({"target": target, "payload": payload})
        async with self._limiter:
            child = self._idle.pop() if self._idle else await self._spawn()
            done = False
            try:
                await child.send(request)
                reply = await child.receive()
                done = True
            finally:
                if not done:  # cancelled, timed out or broken: its state is unknown
                    await self._drop(child, child.kill)
            child.tasks += 1
            if child.tasks >= self.max_tasks_per_child:
                await self._drop(child, child.retire)
            else:
                self._idle.append(child)
        if reply["ok"]:
            return reply["result"]
        raise remote_error(reply)

    async def aclose(self) -> None:
        """Stop every child (idle ones exit on EOF; busy ones are killed)."""
        idle, self._idle = self._idle, []
        busy = self._children - set(idle)
        for child in idle:
            await self._drop(child, child.retire)
        for child in busy:
            await self._drop(child, child.kill)

    async def _drop(self, child: _Child, how: Callable[[], Any]) -> None:
        self._children.discard(child)
        await how()

    async def _spawn(self) -> _Child:
        proc = await trio.lowlevel.open_process(CHILD, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                process_group=0)
        child = _Child(proc)
        self._children.add(child)
        self.started += 1
        try:
            await child.send(dumps({"sys_path": sys.path}))
        except BaseException:
            await self._drop(child, child.kill)
            raise
        log.debug("handler process %d started", proc.pid)
        return child
