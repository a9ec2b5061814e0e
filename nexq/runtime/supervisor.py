"""Worker processes: one supervisor keeps N ``nexq worker`` children running.

``nexq worker --processes N`` and ``nexq run --worker-processes N`` start N
children, each an ordinary ``nexq worker`` (its own store connections,
claim loop, handler slots and worker-registry entry), so handlers use every
core (``nexq run --api-processes N`` supervises its N - 1 API children, each
serving the same port, the same way). One nursery owns the children; a
child never outlives the supervisor's ``run``:

- a child that exits while nobody asked it to (a crash, an OOM kill, a
  SIGKILL) is started again after a backoff that doubles from
  ``Backoff.first`` up to ``Backoff.cap`` and starts over once a child ran
  ``Backoff.reset_after`` seconds;
- :meth:`Supervisor.stop` forwards a signal to every child: the first
  drains (a child stops claiming and gives its running tasks the grace
  period), the next stops them at once (attempts are still handed back);
  ``run`` returns when every child has exited, killing any still there
  ``KILL_MARGIN`` seconds after the grace;
- children run in their own process group (a terminal's Ctrl-C reaches the
  supervisor only, which forwards it once) with a pipe on stdin: they stop
  by themselves when it closes, that is when the supervisor is gone, even
  by SIGKILL.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import trio

log = logging.getLogger("nexq.supervisor")
KILL_MARGIN = 10.0  # seconds past the grace before a child still draining is killed
CANCEL_WAIT = 5.0  # seconds a child gets to stop when the supervisor itself is cancelled


@attrs.frozen
class Backoff:
    """Delays between restarts of a crashing child."""

    first: float = 0.5
    cap: float = 30.0
    reset_after: float = 60.0  # a child that ran this long crashed for a new reason

    def after(self, previous: float | None, ran: float) -> float:
        """The delay before the next start, given the one before it (None:
        none yet) and how long the child ran."""
        if previous is None or ran >= self.reset_after:
            return self.first
        return min(previous * 2, self.cap)


class Supervisor:
    """Keeps ``processes`` children running: ``command(slot)`` is the argv
    of child ``slot`` (0-based), started with ``env``."""

    def __init__(self, command: Callable[[int], Sequence[str]], env: Mapping[str, str], processes: int, *,
                 grace: float, backoff: Backoff = Backoff(),
                 label: Callable[[int], str] = lambda slot: f"worker process {slot + 1}",
                 kind: str = "worker processes") -> None:
        """``label(slot)`` names a child in logs, ``kind`` all of them."""
        self.command, self.env, self.processes = command, dict(env), processes
        self.label, self.kind = label, kind
        self.grace, self.backoff = grace, backoff
        self.children: dict[int, trio.Process] = {}  # slot -> the live child
        self.restarts = self.killed = 0
        self._signals: list[int] = []  # the signals forwarded so far
        self._stopping = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> int:
        """Run the children until :meth:`stop` and they all exited; returns
        0, or 1 if one had to be killed after the grace."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._deadline)
            async with trio.open_nursery() as slots:
                for slot in range(self.processes):
                    slots.start_soon(self._keep, slot)
                task_status.started(self)
            nursery.cancel_scope.cancel()
        return 1 if self.killed else 0

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop restarting and send ``signum`` to every child: the first
        call drains them, a later one stops them at once."""
        self._signals.append(signum)
        self._stopping.set()
        for proc in self.children.values():
            _send(proc, signum)

    async def _keep(self, slot: int) -> None:
        delay: float | None = None
        while not self._stopping.is_set():
            started = trio.current_time()
            code = await self._run_child(slot)
            if self._stopping.is_set():
                if code != 0:
                    log.warning("%s exited with %s while stopping", self.label(slot), _how(code))
                return
            ran = trio.current_time() - started
            delay = self.backoff.after(delay, ran)
            self.restarts += 1
            log.warning("%s exited with %s after %.1f s: starting it again in %.1f s",
                        self.label(slot), _how(code), ran, delay)
            with trio.move_on_after(delay):
                await self._stopping.wait()

    async def _run_child(self, slot: int) -> int:
        # stdin=PIPE: the child stops when our end closes (see the module docstring)
        proc = await trio.lowlevel.open_process(list(self.command(slot)), env=self.env,
                                                stdin=subprocess.PIPE, process_group=0)
        self.children[slot] = proc
        log.info("%s started (pid %d)", self.label(slot), proc.pid)
        try:
            if self._signals:  # stop() came while it was starting
                _send(proc, self._signals[0])
            return await proc.wait()
        finally:
            del self.children[slot]
            with trio.CancelScope(shield=True):
                if proc.returncode is None:  # we were cancelled: ask it to stop, then make it
                    _send(proc, signal.SIGTERM)
                    with trio.move_on_after(CANCEL_WAIT):
                        await proc.wait()
                    proc.kill()
                    await proc.wait()
                assert proc.stdin is not None
                await proc.stdin.aclose()

    async def _deadline(self) -> None:
        await self._stopping.wait()
        await trio.sleep(self.grace + KILL_MARGIN)
        for slot, proc in list(self.children.items()):
            log.warning("%s (pid %d) still running %.0f s after the grace: killing it",
                        self.label(slot), proc.pid, KILL_MARGIN)
            self.killed += 1
            proc.kill()


async def supervise(supervisor: Supervisor, on_signal: Callable[[int], None] = lambda count: None) -> int:
    """Run ``supervisor`` with SIGTERM and SIGINT forwarded to its children
    (``on_signal(count)`` is told of each: 1 for the first); returns its
    exit code once every child exited."""
    async with trio.open_nursery() as nursery:
        await nursery.start(_forward_signals, supervisor, on_signal)
        code = await supervisor.run()
        nursery.cancel_scope.cancel()
    return code


async def _forward_signals(supervisor: Supervisor, on_signal: Callable[[int], None], *,
                           task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        count = 0
        async for signum in signals:
            count += 1
            name = signal.Signals(signum).name
            if count == 1:
                log.info("%s: draining %d %s (grace %.0f s; again to stop at once)",
                         name, supervisor.processes, supervisor.kind, supervisor.grace)
            else:
                log.info("%s again: stopping the %s now", name, supervisor.kind)
            on_signal(count)
            supervisor.stop(signum)


def _send(proc: trio.Process, signum: int) -> None:
    try:
        proc.send_signal(signum)
    except ProcessLookupError:
        pass  # it exited; wait() reaps it


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
