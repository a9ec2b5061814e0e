"""A cheaper keep-alive idle timer for Hypercorn's trio server.

Hypercorn closes a keep-alive connection left idle for ``keep_alive_timeout``
seconds: each connection holds a ``TrioSingleTask`` that is stopped when a
request arrives and restarted when its response is done. Its ``restart``
takes a lock and starts the timer task with ``nursery.start`` (a temporary
nursery and a switch to the new task and back before the response's
sender goes on); under ``wrk`` that was about a tenth of the CPU of a
``POST /api/tasks``. :class:`IdleTask` keeps the contract (the action runs
in a task of the connection's nursery, ``restart`` cancels the previous
one, ``stop`` cancels it) with ``start_soon`` and the cancel scope made
here, so neither the lock nor the hand-off is needed: nothing in either
method waits.

:func:`install` puts it in Hypercorn's trio TCP server (where the class is
a module-level name, not a setting). It changes nothing when Hypercorn is
not the version this was written for (the names it replaces are checked).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

Action = Callable[[], Awaitable[None]]
REPLACED = "TrioSingleTask"  # the name in hypercorn.trio.tcp_server


class IdleTask:
    """Hypercorn's ``SingleTask`` for trio: at most one run of an action at a
    time, restartable and stoppable, without waiting."""

    def __init__(self) -> None:
        self._handle: trio.CancelScope | None = None

    async def restart(self, task_group: Any, action: Action) -> None:
        """Cancel the running action, if any, and start ``action`` in
        ``task_group``'s nursery."""
        if self._handle is not None:
            self._handle.cancel()
        # Made here, not in the task: a stop() before the task first runs
        # cancels it all the same (it then ends at its first checkpoint).
        self._handle = trio.CancelScope()
        task_group._nursery.start_soon(_run, self._handle, action)

    async def stop(self) -> None:
        """Cancel the running action, if any."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None


async def _run(scope: trio.CancelScope, action: Action) -> None:
    with scope:
        await action()


def install() -> bool:
    """Make Hypercorn's trio TCP server use :class:`IdleTask` for its idle
    timer; whether it does (False: not a Hypercorn this knows)."""
    try:
        from hypercorn.trio import tcp_server, worker_context
    except ImportError:
        return False
    current = getattr(tcp_server, REPLACED, None)
    if current is IdleTask:
        return True
    if current is not getattr(worker_context, REPLACED, None) or not _knows(current):
        return False
    setattr(tcp_server, REPLACED, IdleTask)  # a module-level name, not a setting
    return True


def _knows(cls: Any) -> bool:
    """``cls`` is the TrioSingleTask this replaces: restart(task_group,
    action) and stop(), coroutines, and nothing else public."""
    import inspect

    public = {name for name in vars(cls) if not name.startswith("_")}
    return public == {"restart", "stop"} and all(
        inspect.iscoroutinefunction(getattr(cls, name)) for name in public)
