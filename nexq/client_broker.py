"""What the clients' queue code may use of a broker.

``nexq.Client`` and ``nexq.AsyncClient`` run queue code (``client.run(fn)``)
against a broker: on one store a :class:`~nexq.queue.node.NodeBroker`, on a
Redis Cluster a :class:`~nexq.cluster_producing.PlannedCluster` over its
partitions. Both are typed as :class:`ClientBroker`, the members the clients
use, so code given to ``run`` is checked against what every broker has.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Protocol

from .queue import Enqueued
from .queue.inspect import Page
from .queue.requests import EnqueueRequest
from .store import Store
from .task import Task


class ClientInspector(Protocol):
    """Reads by id, queues and their stats, the first page of the listing."""

    async def get(self, task_id: str) -> Task | None: ...

    async def get_many(self, task_ids: Sequence[str]) -> builtins.list[Task | None]: ...

    async def list(self, *, status: str | None = None, type: str | None = None, queue: str | None = None,
                   limit: int = 50, cursor: int | str | None = None, id_prefix: str | None = None,
                   text: str | None = None, created_after: float | None = None,
                   created_before: float | None = None) -> Page: ...

    async def queues(self) -> builtins.list[str]: ...

    async def queue_stats(self, names: Sequence[str] | None = None) -> builtins.list[dict[str, Any]]: ...


class ClientProducer(Protocol):
    async def release(self) -> None:
        """Give back the lane slots and index positions reserved ahead."""

    def warm_due(self) -> bool:
        """Whether :meth:`refresh` would write now."""

    async def refresh(self) -> bool:
        """Renew the numbers reserved ahead while idle (one round trip when
        due); whether it wrote."""


class ClientBroker(Protocol):
    """Enqueue, read, cancel; the store's ``sleep``; the producer's release and refresh."""

    @property
    def store(self) -> Store: ...

    @property
    def producer(self) -> ClientProducer: ...

    async def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[Enqueued]: ...

    def inspector(self) -> ClientInspector: ...

    async def cancel(self, task_id: str, reason: str = "cancelled on request") -> bool: ...
