"""The runtime context: what one Nexq process shares between its parts.

``run_service`` builds one Runtime; the API, the dashboard, workers and the
scheduler all read it. Nothing here is global: tests build their own.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import attrs

from .config import Settings
from .events import EventHub
from .histogram import Histogram
from .keys import Keys
from .queue import Broker, Inspector
from .registry import WorkerRegistry
from .store import Store


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
    def build(cls, settings: Settings, store: Store, **kw: Any) -> Runtime:
        events = EventHub()
        registry = WorkerRegistry(store, Keys(settings.namespace))
        from .webhooks import WebhookSettings, check_url

        if settings.webhook_url:
            check_url(settings.webhook_url, settings.webhook_allow_private)
        broker = Broker(
            store,
            namespace=settings.namespace,
            lease_ms=int(settings.lease * 1000),
            retention=settings.retention,
            events=events,
            # the embedded store lives in one process: nobody else to ring
            doorbells=None if store.kind == "memory" else registry.list,
        )
        broker.webhook = WebhookSettings(
            url=settings.webhook_url,
            secret=settings.webhook_secret,
            allow_private=settings.webhook_allow_private,
            on_failure=settings.webhook_on_failure,
        )
        return cls(
            settings=settings,
            store=store,
            broker=broker,
            inspector=Inspector(broker),
            registry=registry,
            events=events,
            **kw,
        )
