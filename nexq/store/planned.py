"""Planned I/O: the queue protocols driven by any transport.

The queue protocols (:mod:`nexq.queue`) are ``async def`` code whose only
awaits are store calls. :class:`PlannedStore` performs none of them: each
call *yields its request* (a :class:`~.base.Batch` to run in one round trip,
a :class:`Sleep`, a :class:`Save`, a :class:`Wait` for another run) out of
the coroutine to whoever drives it, which performs the request on its own transport and resumes the
coroutine with the answer (``coro.send(answers)``) or the error
(``coro.throw(exc)``). The commands are planned as data; the I/O is the
driver's (sans-IO). One protocol, several drivers:

* :mod:`.blocking`: blocking sockets, for threads (``nexq.Client``);
* :mod:`.aio`: asyncio (``nexq.AsyncClient``);
* under trio the runtime keeps its own :class:`~.resp.RespStore`.

A driver iterates over :class:`Steps` and turns each request into RESP
commands (:func:`~.transport.commands_of`: a Batch through
:class:`~.resp_commands.BatchPlan`), so the Pogocache allowlist holds on
every transport.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Generator
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any, Self

import attrs

from .base import Batch, Store


@attrs.frozen
class Sleep:
    """Wait ``seconds`` (``Store.sleep``): the driver sleeps its own way."""

    seconds: float


@attrs.frozen
class Save:
    """``SAVE`` (``Store.save``): one raw command, answered with its reply."""


class Signal:
    """A one-shot event between runs of one driver (an asyncio loop's):
    an enqueue group's member waits on it (a :class:`Wait` request), its
    leader sets it. Not thread-safe: the blocking driver never waits on one
    (each of its threads has a broker of its own)."""

    __slots__ = ("_wakers", "is_set")

    def __init__(self) -> None:
        self.is_set = False
        self._wakers: list[Callable[[], object]] = []

    def set(self) -> None:
        self.is_set = True
        wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    def on_set(self, wake: Callable[[], object]) -> None:
        """Call ``wake`` once set (at once if it is)."""
        if self.is_set:
            wake()
        else:
            self._wakers.append(wake)

    async def wait(self) -> None:
        if not self.is_set:
            await _Planned(Wait(self))


@attrs.frozen(eq=False)
class Wait:
    """Wait until ``signal`` is set: the driver resumes the run then."""

    signal: Signal


class PlannedScheduling:
    """Enqueue coalescing (:class:`nexq.queue.enqueue_group.Scheduling`) for
    runs on a planned store: a scheduler pass is ``Sleep(0)`` (the driver
    lets its other runs go once), a member waits with :class:`Wait`. The
    driver cannot tell whether runs are queued, so a leader waits its idle
    passes out; the asyncio driver finishes a leader's write in a task of
    its own when the leader's caller is cancelled (:func:`shielded`)."""

    def event(self) -> Signal:
        return Signal()

    async def checkpoint(self) -> None:
        await _Planned(Sleep(0))

    def runnable(self) -> bool:
        return True

    def shield(self) -> AbstractContextManager[None]:
        return _Shield()


_SHIELDED: ContextVar[int] = ContextVar("nexq_planned_shielded", default=0)


class _Shield:
    """Marks the requests a run yields inside it as shielded (:func:`shielded`).
    A context variable: the coroutine runs in its driver's context, so the
    driver sees it. Counted, not reset by token, since the section may end
    in another driver task (a copy of the context)."""

    def __enter__(self) -> None:
        _SHIELDED.set(_SHIELDED.get() + 1)

    def __exit__(self, *exc: object) -> None:
        _SHIELDED.set(max(0, _SHIELDED.get() - 1))


def shielded() -> bool:
    """Whether the run being driven is inside an enqueue group's write,
    which its members wait for: a driver finishes it even if its caller is
    cancelled (:mod:`.aio`)."""
    return _SHIELDED.get() > 0


def unshield() -> None:
    """Forget the shield in this context (the section went on in another task)."""
    _SHIELDED.set(0)


#: what a planned store's awaits yield to the driver
Request = Batch | Sleep | Save | Wait
_REQUESTS = (Batch, Sleep, Save, Wait)


class _Planned:
    """An awaitable that hands ``request`` to the driver and returns what the
    driver sends back (or raises what it throws in)."""

    __slots__ = ("request",)

    def __init__(self, request: Request) -> None:
        self.request = request

    def __await__(self) -> Generator[Request, Any, Any]:
        return (yield self.request)


class PlannedStore(Store):
    """A Store whose calls are requests to a driver (see module doc).

    Stateless: any number of coroutines, on any number of drivers, may use
    one instance. Every Store primitive goes through :meth:`execute` (the
    base class's single-key methods build a one-op Batch).
    """

    def __init__(self, kind: str = "redis") -> None:
        self.kind = kind
        self.scheduling = PlannedScheduling()  # concurrent enqueues on one driver share round trips

    async def execute(self, batch: Batch) -> list[Any]:
        return await _Planned(batch)  # type: ignore[no-any-return]

    async def sleep(self, seconds: float) -> None:
        await _Planned(Sleep(seconds))

    async def ping(self) -> float:
        start = time.perf_counter()
        await self.execute(Batch().exists("nexq:ping"))
        return time.perf_counter() - start

    async def save(self) -> None:
        await _Planned(Save())

    async def aclose(self) -> None:
        """Nothing to release: the drivers own the connections."""


class Steps:
    """Drives one protocol coroutine: iterate over its requests and answer
    each (:meth:`answer` or :meth:`fail`) before asking for the next::

        with Steps(coro) as steps:
            for request in steps:
                try:
                    steps.answer(perform(request))
                except Exception as exc:
                    steps.fail(exc)  # raised inside coro, at its store call
        return steps.result

    What the coroutine raises propagates out of the loop. Leaving the
    ``with`` before it finished (an interrupt, a cancellation) closes it.
    Raises TypeError (the coroutine closed) if it awaited anything but a
    planned store's request: trio or asyncio calls inside protocol code or
    middleware cannot run on every transport.
    """

    __slots__ = ("_answer", "_coro", "_error", "detached", "done", "result")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._answer: Any = None
        self._error: BaseException | None = None
        self.done = False
        self.detached = False  # handed to another driver task: leaving the ``with`` keeps it
        self.result: Any = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.detached:
            self.close()

    def close(self) -> None:
        """Close the coroutine unless it finished."""
        if not self.done:
            self._coro.close()

    def __iter__(self) -> Steps:
        return self

    def __next__(self) -> Request:
        answer, error = self._answer, self._error
        self._answer = self._error = None
        try:
            request = self._coro.send(answer) if error is None else self._coro.throw(error)
        except StopIteration as stop:
            self.done, self.result = True, stop.value
            raise StopIteration from None
        if not isinstance(request, _REQUESTS):
            raise TypeError(f"queue code awaited {request!r}, which is not a store call: code run by "
                            "nexq.Client / AsyncClient (the queue protocols, middleware) may await only "
                            "the store, not trio or asyncio directly")
        return request

    def answer(self, value: Any) -> None:
        """Resume the coroutine with ``value`` at the next step."""
        self._answer = value

    def fail(self, error: BaseException) -> None:
        """Raise ``error`` inside the coroutine at the next step."""
        self._error = error
