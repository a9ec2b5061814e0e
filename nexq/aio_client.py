"""``nexq.AsyncClient``: enqueue and follow tasks from asyncio code.

    from nexq import AsyncClient

    async with AsyncClient("pogocache://127.0.0.1:9401", namespace="nexq") as client:
        h = await client.enqueue("send_email", {"to": "a@example.com"})
        print(await h.result(timeout=60))

Native asyncio: the queue code the trio runtime runs (enqueue, status,
cancel) is driven on asyncio connections (:mod:`nexq.store.aio`), with no
trio and no thread behind it. One client serves all of an app's requests
on its event loop: concurrent calls share pipelined connections. Options,
defaults and errors are those of :class:`nexq.Client`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Self, TypeVar

import attrs

from .client_broker import ClientBroker
from .errors import StoreError
from .producing import Producing, Tasks, found, items, result
from .store.aio import AioPool
from .store.cluster_clients import AioClusterPool
from .task import Status, Task

if TYPE_CHECKING:
    from .app import Nexq

T = TypeVar("T")


class AsyncClient:
    """An asyncio producer and inspector for one event loop (see module doc)."""

    def __init__(self, store: str | None = None, *, namespace: str | None = None, app: Nexq | None = None,
                 pool_size: int = 4, replicas: int | None = None) -> None:
        """As :class:`nexq.Client`; ``pool_size``: connections at most (each
        pipelines any number of calls). Does not connect: the first call
        does, and binds the client to its event loop."""
        self._producing = Producing(store, namespace, app, replicas)
        self.namespace = self._producing.settings.namespace
        pool = AioClusterPool if self._producing.url.cluster else AioPool
        self._pool = pool(self._producing.url, size=pool_size, timeout=self._producing.settings.store_timeout,
                             replicas=self._producing.settings.store_replicas)
        # One broker: the calls of one event loop interleave only at store
        # calls, as the runtime's trio tasks do on theirs.
        self._broker = self._producing.broker()

    def __repr__(self) -> str:
        return f"AsyncClient({str(self._producing.url)!r}, namespace={self.namespace!r})"

    async def run(self, fn: Callable[[ClientBroker], Coroutine[Any, Any, T]]) -> T:
        """Run queue code ``fn(broker)`` to its end and return what it
        returns (see :meth:`nexq.Client.run`)."""
        return await self._pool.run(fn(self._broker))

    async def enqueue(self, type: str, payload: Any = None, **options: Any) -> AsyncHandle:
        """Enqueue one task (see :meth:`nexq.Client.enqueue`)."""
        [e] = await self._pool.run(self._producing.enqueue(self._broker, [(type, payload, options)]))
        return AsyncHandle(e.task_id, self, e.created)

    async def enqueue_many(self, tasks: Tasks) -> list[AsyncHandle]:
        """Enqueue ``(type, payload[, options])`` tuples in a constant number of round trips."""
        done = await self._pool.run(self._producing.enqueue(self._broker, items(tasks)))
        return [AsyncHandle(e.task_id, self, e.created) for e in done]

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
