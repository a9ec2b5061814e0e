"""Group commit of enqueues: small enqueues made at the same time in one
process share round trips.

An enqueue costs a round trip or two whatever its size (docs/design.md,
"Enqueue"), so 100 trio or asyncio tasks each enqueuing one task pay 200 round trips
and 100 times the per-call work where one ``enqueue_many`` of 100 pays two.
Here:

* a call made while no enqueue write is in flight in this process writes at
  once, alone: a lone enqueue costs what it always did;
* a call made while writes are in flight starts a *group* and becomes its
  leader, or joins the group still forming. The leader lets the scheduler
  run, one pass at a time for as long as each pass brings joiners (at most
  :data:`MAX_PASSES` passes and :data:`MAX_GROUP` tasks), then writes every
  member's tasks with one :meth:`Producer.write_specs` call: the commands
  and round trips of one bulk ``enqueue_many``. Groups and lone writes run
  concurrently; nothing waits for another write to finish.

Only calls that cannot fail one another join (see
:meth:`Producer.enqueue_many`): each was validated before joining (a bad
request fails its own caller alone), none names a ``task_id`` (a clash
fails a whole batch) or ``depends_on`` (a missing parent does). A
``unique_key`` is decided per task (``SET uniq NX`` each), so duplicates
among members resolve to one task, as they would one after another. What
the write raises (StoreFull, StoreUnavailable) reaches every member, each
as its own exception. The writes are the bulk protocol's, so the crash
analysis is unchanged: a member's tasks exist once its call returned, and
a write cut short leaves what a cut-short ``enqueue_many`` leaves.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ..errors import StoreError, StoreFull, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from ..task import TaskSpec
    from .requests import Enqueued

    WriteSpecs = Callable[[list[TaskSpec], Sequence[bool]], Awaitable[list[Enqueued]]]


class Signal(Protocol):
    """A one-shot event: a member waits on it, the leader sets it."""

    def set(self) -> None: ...

    async def wait(self) -> None: ...


class Scheduling(Protocol):
    """What a group needs from whatever runs its callers: trio
    (:class:`TrioScheduling`), or a planned store's driver, where each of
    these is a request (:class:`nexq.store.planned.PlannedScheduling`:
    asyncio runs the same groups)."""

    def event(self) -> Signal: ...

    async def checkpoint(self) -> None:
        """Let every other runnable caller run once (one scheduler pass)."""

    def runnable(self) -> bool:
        """Whether callers may be queued to run (True when unknown)."""

    def shield(self) -> AbstractContextManager[Any]:
        """Where the group's write runs: protected from its leader's cancellation if possible."""


class TrioScheduling:
    """:class:`Scheduling` under trio."""

    def event(self) -> Signal:
        return trio.Event()

    async def checkpoint(self) -> None:
        await trio.lowlevel.cancel_shielded_checkpoint()

    def runnable(self) -> bool:
        return trio.lowlevel.current_statistics().tasks_runnable > 0

    def shield(self) -> AbstractContextManager[Any]:
        return trio.CancelScope(shield=True)

MAX_JOIN = 100  # calls with up to this many requests join groups; larger ones write alone
MAX_GROUP = 1000  # tasks in one group; a call that would pass it starts the next group
MAX_PASSES = 8  # scheduler passes a leader waits at most, even while joiners keep coming


class _Call:
    __slots__ = ("done", "error", "lead", "result", "specs")

    def __init__(self, specs: list[TaskSpec], done: Signal) -> None:
        self.specs = specs
        self.result: list[Enqueued] = []
        self.error: BaseException | None = None
        self.done = done
        self.lead = False  # woken to lead: the leader left before the write


class _Group:
    __slots__ = ("calls", "size", "started")

    def __init__(self, leader: _Call) -> None:
        self.calls = [leader]
        self.size = len(leader.specs)  # tasks
        self.started = False  # the write has begun: the members are fixed


class EnqueueGroup:
    """Shares the round trips of concurrent enqueues (see the module doc)."""

    def __init__(self, write_specs: WriteSpecs, scheduling: Scheduling | None = None) -> None:
        self._write = write_specs  # Producer.write_specs: the bulk protocol
        self._sched = scheduling or TrioScheduling()
        self._forming: _Group | None = None  # the group still taking members
        self._writing = 0  # enqueue writes in flight (lone or group)

    async def enqueue(self, specs: list[TaskSpec]) -> list[Enqueued]:
        """Create the tasks of validated ``specs``, alone or with the
        concurrent calls; results in order. Raises what the write raised
        (StoreFull, StoreUnavailable).

        Cancellation: a call cancelled while its group is still forming
        leaves it, and nothing of it is written (its leader too, on a planned
        store's driver: the next member then writes the group). Once a group's write has
        begun it is shielded, for the members' sake: a member cancelled
        then still gets its tasks created but raises Cancelled without
        their ids, as with an ``enqueue_many`` cancelled mid-flight (the
        leader's own call returns, and the cancellation reaches it at its
        next checkpoint). A call written alone (no write was in flight, or
        no one joined) is cancelled like ``enqueue_many``: its tasks may or
        may not have been created.
        """
        g = self._forming
        if g is not None and g.size + len(specs) <= MAX_GROUP:
            return await self._join(g, _Call(specs, self._sched.event()))
        if not self._writing:
            self._writing += 1
            try:
                return await self._write(specs, [False] * len(specs))
            finally:
                self._writing -= 1
        return await self._lead(_Call(specs, self._sched.event()))

    async def _join(self, g: _Group, me: _Call) -> list[Enqueued]:
        g.calls.append(me)
        g.size += len(me.specs)
        try:
            await me.done.wait()  # the leader writes it
        except BaseException:
            if not g.started:
                self._leave(g, me)
            raise
        if me.lead:
            me.lead, me.done = False, self._sched.event()
            return await self._write_group(g, me)
        if me.error is not None:
            raise me.error
        return me.result

    def _leave(self, g: _Group, me: _Call) -> None:
        """``me`` leaves group ``g`` before its write (cancelled, or its run
        closed); if ``me`` was to write it (its leader, or the member woken
        to take over), the next member will."""
        g.calls.remove(me)
        g.size -= len(me.specs)
        if me.lead and g.calls:
            heir = g.calls[0]
            heir.lead = True
            heir.done.set()

    async def _lead(self, me: _Call) -> list[Enqueued]:
        g = self._forming = _Group(me)  # a full group's leader sees this and stops waiting
        try:
            # Scheduler passes let the tasks enqueuing now join, for as long
            # as each pass brings some. A pass that brought no one ends the
            # wait, unless tasks were queued for it: the scheduler may have
            # run us before them, so they get one more pass.
            idle = 0
            for _ in range(MAX_PASSES):
                if self._forming is not g or g.size >= MAX_GROUP:
                    break
                size, queued = g.size, self._sched.runnable()
                await self._sched.checkpoint()
                if g.size > size:
                    idle = 0
                    continue
                idle += 1
                if not queued or idle >= 2:
                    break
        except BaseException:
            # Gone before the write (a planned driver closed our run; trio's
            # passes cannot be cancelled): a member writes the group instead.
            me.lead = True
            self._leave(g, me)
            if not g.calls and self._forming is g:
                self._forming = None
            raise
        return await self._write_group(g, me)

    async def _write_group(self, g: _Group, me: _Call) -> list[Enqueued]:
        """Write every member's tasks as one batch (``me`` writes it);
        every member is woken with its results or its error."""
        try:
            if self._forming is g:
                self._forming = None
            g.started = True
            flat = [s for c in g.calls for s in c.specs]
            self._writing += 1
            try:
                if len(g.calls) == 1:
                    out = await self._write(flat, [False] * len(flat))
                else:
                    # Shielded: the members depend on it (the store's command timeout bounds it).
                    with self._sched.shield():
                        out = await self._write(flat, [False] * len(flat))
            finally:
                self._writing -= 1
            at = 0
            for c in g.calls:
                c.result, at = out[at:at + len(c.specs)], at + len(c.specs)
        except BaseException as exc:
            for c in g.calls:
                if c is not me:
                    c.error = _for_member(exc)
            raise
        finally:
            if self._forming is g:
                self._forming = None
            g.started = True
            for c in g.calls:
                c.done.set()
        return me.result


def _for_member(exc: BaseException) -> BaseException:
    """What a member raises when its group's write raised ``exc``: its own
    copy of a store error; StoreUnavailable for the leader's interruption
    mid-write (a driver closing the leader's run despite the shield: the
    blocking driver, never coalescing, cannot), since the write may or may
    not have reached the store."""
    if isinstance(exc, (StoreError, StoreFull)):
        return type(exc)(str(exc))
    if isinstance(exc, GeneratorExit):
        return StoreUnavailable("the enqueue was interrupted while writing its group: its task may or may not exist")
    return exc
