"""The runtime's own middleware: events, wake-ups, local cancels, metrics.

Each subscribes to the queue layer's hooks (:mod:`nexq.hooks`); the queue
layer knows none of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from ..errors import StoreError
from ..hooks import Middleware, Terminal
from ..keys import State
from ..queue import NodeBroker
from ..queue.lanes import PUSHED, Pushed
from ..task import Attempt, Outcome, TaskSpec
from .doorbell import Ringer
from .events import EventHub
from .histogram import Histogram


class PublishEvents(Middleware):
    """Task and attempt changes of this process, for the SSE stream."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    async def after_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        if not self.hub.subscribers:
            return
        for s in specs:
            status = State.WAITING if s.depends_on else State.PENDING if s.run_at is None else State.SCHEDULED
            self.hub.publish("task", id=s.id, type=s.type, queue=s.queue, status=status.value)

    async def after_claim(self, node: NodeBroker, specs: Sequence[TaskSpec], attempts: Sequence[int],
                          worker: str) -> None:
        for s, a in zip(specs, attempts):
            self.hub.publish("task", id=s.id, type=s.type, queue=s.queue, status="running",
                             attempt=a, worker=worker)

    async def after_decided(self, node: NodeBroker, spec: TaskSpec, attempt: Attempt) -> None:
        self.hub.publish("attempt", id=spec.id, type=spec.type, queue=spec.queue, attempt=attempt.number,
                         outcome=attempt.outcome.value if attempt.outcome else None)

    async def after_terminal(self, node: NodeBroker, event: Terminal) -> None:
        s = event.spec
        self.hub.publish("task", id=s.id, type=s.type, queue=s.queue, status=event.state)


class Wakeup(Middleware):
    """Wakes claimers when work is pushed: at once in this process, and
    through their doorbells (:mod:`nexq.runtime.doorbell`) in others; and
    rings the worker running an attempt cancelled here to check it now.

    ``list_workers`` reads the worker registry (None: nobody else to ring,
    as with the embedded store, which lives in one process).
    """

    def __init__(self, list_workers: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None) -> None:
        self._list_workers = list_workers
        self._event = trio.Event()
        self.ringer = Ringer()
        self._listeners: list[Callable[[Pushed | None], None]] = []

    def listen(self, on_wake: Callable[[Pushed | None], None]) -> Callable[[], None]:
        """Call ``on_wake`` at each wake-up, with the attempt it names if one
        (a lone push here or rung by a doorbell: a worker here claims it at
        once); returns the call that stops it."""
        self._listeners.append(on_wake)
        return lambda: self._listeners.remove(on_wake)

    def wake(self, pushed: Pushed | None = None) -> None:
        """Wake claimers in this process (``pushed``: the attempt a push named)."""
        for listener in self._listeners:
            listener(pushed)
        self._event.set()
        self._event = trio.Event()

    async def wait(self, timeout: float) -> None:
        """Sleep until :meth:`wake` or ``timeout`` seconds, whichever first."""
        with trio.move_on_after(timeout):
            await self._event.wait()

    async def after_push(self, node: NodeBroker) -> None:
        pushed = PUSHED.get()
        self.wake(pushed)
        if self._list_workers is None:
            return
        if self.ringer.stale:
            await self._refresh(self._list_workers)
        self.ringer.ring(pushed)

    async def after_decided(self, node: NodeBroker, spec: TaskSpec, attempt: Attempt) -> None:
        """A cancel of a running attempt rings the doorbell of the worker its
        lease named (CHECK): that worker stops the handler at once instead of
        at its next heartbeat."""
        if attempt.outcome is not Outcome.CANCELLED or not attempt.worker or self._list_workers is None:
            return
        if not self.ringer.check(attempt.worker) and self.ringer.stale:
            await self._refresh(self._list_workers)  # a worker that registered since the last read
            self.ringer.check(attempt.worker)

    async def _refresh(self, list_workers: Callable[[], Awaitable[list[dict[str, Any]]]]) -> None:
        try:
            self.ringer.update(await list_workers())
        except StoreError:  # only delays wake-ups to the workers' next poll
            self.ringer.update([])


class LocalCancels(Middleware):
    """Cancels a running handler in this process as soon as its attempt is
    cancelled here (other processes' cancels arrive through the heartbeat)."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, int], Callable[[], None]] = {}

    def watch(self, task_id: str, attempt: int, cancel: Callable[[], None] | None) -> None:
        """Call ``cancel`` if this attempt is cancelled (None: stop watching)."""
        if cancel is None:
            self._running.pop((task_id, attempt), None)
        else:
            self._running[(task_id, attempt)] = cancel

    async def after_decided(self, node: NodeBroker, spec: TaskSpec, attempt: Attempt) -> None:
        if attempt.outcome is Outcome.CANCELLED:
            cancel = self._running.pop((spec.id, attempt.number), None)
            if cancel is not None:
                cancel()


class HandlerDurations(Middleware):
    """Feeds the handler-duration histogram behind ``/metrics``."""

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram

    async def after_process(self, ctx: Any, outcome: Outcome | None, result: Any,
                            error: BaseException | None, duration: float) -> None:
        if outcome is not None:
            self.histogram.observe(duration)
