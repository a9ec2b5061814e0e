"""``nexq.AsyncClient``: enqueue and follow tasks from asyncio code.

    from nexq import AsyncClient

    async with AsyncClient("pogocache://127.0.0.1:9401", namespace="nexq") as client:
        h = await client.enqueue("send_email", {"to": "a@example.com"})
        print(await h.result(timeout=60))

Native asyncio: the queue code the trio runtime runs (enqueue, status,
cancel) is driven on asyncio connections (:mod:`nexq.store.aio`), with no
trio and no thread behind it. One client serves all of an app's requests
on its event loop: concurrent calls share pipelined connections. Options,
defaults and errors are those of :class:`nexq.Client`; after the first
enqueue, a task on the loop keeps the client warm as the sync client's
thread does, until ``aclose()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Self, TypeVar

import attrs

from .client_broker import ClientBroker
from .errors import StoreError
from .producing import Producing, Tasks, found, items, result
from .queue.reservations import WARM_TICK
from .store.aio import AioPool
from .store.cluster_clients import AioClusterPool
from .task import Status, Task

if TYPE_CHECKING:
    from .app import Nexq

T = TypeVar("T")
log = logging.getLogger("nexq.client")


class AsyncClient:
    """An asyncio producer and inspector for one event loop (see module doc)."""

    def __init__(self, store: str | None = None, *, namespace: str | None = None, app: Nexq | None = None,
                 pool_size: int = 4, replicas: int | None = None, keep_warm: bool = True) -> None:
        """As :class:`nexq.Client`; ``pool_size``: connections at most (each
        pipelines any number of calls). Does not connect: the first call
        does, and binds the client to its event loop. ``keep_warm``: after
        the first enqueue a task on that loop renews the numbers reserved
        ahead while the client idles; ``aclose()`` ends it."""
        self._producing = Producing(store, namespace, app, replicas)
        self.namespace = self._producing.settings.namespace
        pool = AioClusterPool if self._producing.url.cluster else AioPool
        self._pool = pool(self._producing.url, size=pool_size, timeout=self._producing.settings.store_timeout,
                             replicas=self._producing.settings.store_replicas)
        # One broker: the calls of one event loop interleave only at store
        # calls, as the runtime's trio tasks do on theirs.
        self._broker = self._producing.broker()
        self._keep_warm = keep_warm
        self._warmer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"AsyncClient({str(self._producing.url)!r}, namespace={self.namespace!r})"

    async def run(self, fn: Callable[[ClientBroker], Coroutine[Any, Any, T]]) -> T:
        """Run queue code ``fn(broker)`` to its end and return what it
        returns (see :meth:`nexq.Client.run`)."""
        return await self._pool.run(fn(self._broker))

    async def enqueue(self, type: str, payload: Any = None, **options: Any) -> AsyncHandle:
        """Enqueue one task (see :meth:`nexq.Client.enqueue`)."""
        [e] = await self._pool.run(self._producing.enqueue(self._broker, [(type, payload, options)]))
        if self._warmer is None and self._keep_warm:
            self._start_warmer()
        return AsyncHandle(e.task_id, self, e.created)

    async def enqueue_many(self, tasks: Tasks) -> list[AsyncHandle]:
        """Enqueue ``(type, payload[, options])`` tuples in a constant number of round trips."""
        done = await self._pool.run(self._producing.enqueue(self._broker, items(tasks)))
        if self._warmer is None and self._keep_warm:
            self._start_warmer()
        return [AsyncHandle(e.task_id, self, e.created) for e in done]

    def _start_warmer(self) -> None:
        if not self._pool.closed:
            self._warmer = asyncio.get_running_loop().create_task(self._keep_warm_loop(), name="nexq-client-warm")
            self._producing.view.kept = True

    async def _keep_warm_loop(self) -> None:
        """Every ``WARM_TICK`` s, refresh the broker if it is due (see
        :meth:`nexq.Client._refresh_top`); ends when cancelled."""
        while True:
            await asyncio.sleep(WARM_TICK)
            if self._producing.refresh_due(self._broker):
                try:
                    await self._pool.run(self._producing.refresh(self._broker))
                except Exception as exc:  # noqa: BLE001 - in the background: log, retry at the next tick
                    log.debug("keeping the client warm failed (retried): %s", exc)

    async def get(self, task_id: str) -> Task | None:
        """Everything about one task, or None if unknown or expired."""
        return await self._pool.run(self._broker.inspector().get(task_id))

    def handle(self, task_id: str) -> AsyncHandle:
        return AsyncHandle(task_id, self)

    async def cancel(self, task_id: str) -> bool:
        """See :meth:`nexq.Client.cancel`."""
        return await self._pool.run(self._broker.cancel(task_id))

    async def result(self, task_id: str, timeout: float | None = None, poll: float = 0.02) -> Any:
        """See :meth:`nexq.Client.result`."""
        return await self._pool.run(result(self._broker, task_id, timeout, poll))

    async def aclose(self) -> None:
        """Give back the slots reserved ahead (see :meth:`nexq.Client.close`),
        then close the connections; calls still waiting get StoreUnavailable."""
        warmer, self._warmer = self._warmer, None
        self._producing.view.kept = False
        if warmer is not None:
            warmer.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):  # RuntimeError: another event loop
                await warmer
        if not self._pool.closed:
            with contextlib.suppress(StoreError, RuntimeError):  # RuntimeError: another event loop
                await self._pool.run(self._broker.producer.release())
        await self._pool.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


@attrs.define
class AsyncHandle:
    """A task enqueued through an :class:`AsyncClient`."""

    id: str
    client: AsyncClient = attrs.field(repr=False)
    created: bool = True

    async def info(self) -> Task:
        return found(await self.client.get(self.id), self.id)

    async def status(self) -> Status:
        return (await self.info()).status

    async def result(self, timeout: float | None = None, poll: float = 0.02) -> Any:
        return await self.client.result(self.id, timeout, poll)

    async def cancel(self) -> bool:
        return await self.client.cancel(self.id)
