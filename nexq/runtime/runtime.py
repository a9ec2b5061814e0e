"""The runtime context: what one Nexq process shares between its parts.

``run_service`` builds one Runtime; the API, the dashboard, workers and the
scheduler all read it. Nothing here is global: tests build their own.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import attrs

from ..config import Settings
from ..keys import Keys
from ..queue import Broker, Inspector
from ..queue.cluster import ClusterBroker
from ..store import Store, open_stores
from .events import EventHub
from .histogram import Histogram
from .registry import WorkerRegistry


class CronStatus(Protocol):
    async def status(self) -> list[dict[str, Any]]:
        """Each cron entry: name, schedule, timezone, type, last_fire, next_fire."""
        ...


class _NoCron:
    async def status(self) -> list[dict[str, Any]]:
        return []


@attrs.define
class Runtime:
    settings: Settings
    store: Store
    broker: Broker
    inspector: Inspector
    registry: WorkerRegistry
    events: EventHub
    cron: CronStatus = attrs.field(factory=_NoCron)
    task_types: set[str] = attrs.field(factory=set)  # types with a handler in this process
    guard: Any = None  # the StoreGuard, when this process runs one
    handler_durations: Histogram = attrs.field(factory=Histogram)
    # Builds an EnqueueRequest with the type's handler defaults (the app's);
    # the API uses it so tasks made over HTTP get @app.task's settings too.
    task_defaults: Any = None
    started_at: float = attrs.field(factory=time.time)

    @classmethod
    def build(cls, settings: Settings, store: Store | Sequence[Store],
              names: Sequence[str] | None = None, **kw: Any) -> Runtime:
        """The runtime over one store, or over several nodes (``names`` name
        them; the first is home to the worker registry, cron and limits)."""
        stores = [store] if isinstance(store, Store) else list(store)
        events = EventHub()
        registry = WorkerRegistry(stores[0], Keys(settings.namespace))
        from .webhooks import WebhookSettings, check_url

        if settings.webhook_url:
            check_url(settings.webhook_url, settings.webhook_allow_private)
        hook = WebhookSettings(
            url=settings.webhook_url,
            secret=settings.webhook_secret,
            allow_private=settings.webhook_allow_private,
            on_failure=settings.webhook_on_failure,
        )
        nodes = [
            Broker(
                s,
                namespace=settings.namespace,
                lease_ms=int(settings.lease * 1000),
                retention=settings.retention,
                events=events,
                # the embedded store lives in one process: nobody else to ring
                doorbells=None if s.kind == "memory" else registry.list,
            )
            for s in stores
        ]
        broker = nodes[0] if len(nodes) == 1 else ClusterBroker(
            nodes, list(names or [f"node{i}" for i in range(len(nodes))]))
        for b in {broker, *nodes}:
            b.webhook = hook
        return cls(
            settings=settings,
            store=stores[0],
            broker=broker,
            inspector=broker.inspector(),
            registry=registry,
            events=events,
            **kw,
        )


@asynccontextmanager
async def open_runtime(settings: Settings, **kw: Any) -> AsyncIterator[Runtime]:
    """Open every store node ``settings`` lists and build the Runtime on them."""
    nodes = settings.store_nodes
    async with open_stores(nodes, **settings.store_options()) as stores:
        yield Runtime.build(settings, stores, [n.node_name for n in nodes], **kw)
