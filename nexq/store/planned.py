"""Planned I/O: the queue protocols driven by any transport.

The queue protocols (:mod:`nexq.queue`) are ``async def`` code whose only
awaits are store calls. :class:`PlannedStore` performs none of them: each
call *yields its request* (a :class:`~.base.Batch` to run in one round trip,
a :class:`Sleep`, a :class:`Save`) out of the coroutine to whoever drives
it, which performs the request on its own transport and resumes the
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
from collections.abc import Coroutine, Generator
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


#: what a planned store's awaits yield to the driver
Request = Batch | Sleep | Save
_REQUESTS = (Batch, Sleep, Save)


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

    __slots__ = ("_answer", "_coro", "_error", "done", "result")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._answer: Any = None
        self._error: BaseException | None = None
        self.done = False
        self.result: Any = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
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
