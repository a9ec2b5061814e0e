"""The Runtime: what one Nexq process shares between its parts.

``run_service`` (and ``app.connect()``) builds one Runtime; the API, the
dashboard, workers and the scheduler all read it. It is complete when
built: the queue backend with its hooks, the worker registry, the store
guards, cron and the app's task defaults. Nothing here is global: tests
build their own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import trio

from ..config import Settings
from ..errors import StoreError
from ..hooks import Hooks, Middleware
from ..keys import Keys
from ..queue import (
    ClusterBroker,
    NodeBroker,
    QueueBackend,
    WebhookPolicy,
)
from ..store import Store, open_nodes
from ..store.nursery import background_nursery
from ..webhook_url import check_url
from .cron import CronScheduler
from .events import EventHub
from .guard import Admission, StoreGuard
from .histogram import Histogram
from .limits import LimitTasks
from .reconcile_agent import ReconcileAgent
from .registry import WorkerRegistry
from .registry_view import RegistryView
from .subscribers import HandlerDurations, LocalCancels, PublishEvents, Wakeup
from .task_types import TaskTypes, publication
from .warm import KeepWarm
from .webhooks import Webhooks, WebhookSettings

if TYPE_CHECKING:
    from ..app import Nexq
    from ..queue.backend import AnyInspector


@attrs.frozen
class Runtime:
    settings: Settings
    store: Store  # the home node's store
    broker: QueueBackend
    inspector: AnyInspector  # one node's, or every node's merged: the same methods
    registry: WorkerRegistry
    events: EventHub
    hooks: Hooks
    wakeup: Wakeup
    cancels: LocalCancels
    webhooks: Webhooks
    guards: list[StoreGuard]
    cron: CronScheduler
    reconciler: ReconcileAgent  # run by processes with the scheduler agents
    handler_durations: Histogram
    # The types' defaults (the app's handlers', the live workers') and the
    # one function every enqueue path (API, cron, app) builds requests with.
    task_types: TaskTypes
    started_at: float = attrs.field(factory=time.time)
    # Renews the producers' reserved numbers while idle (None: the embedded
    # store, where a round trip is a function call).
    warm: KeepWarm | None = None

    @property
    def guard(self) -> StoreGuard:
        """The home node's guard."""
        return self.guards[0]

    @property
    def node_names(self) -> list[str]:
        """The names of the store nodes, home first (``Claimed.node`` indexes it)."""
        return self.broker.names

    @classmethod
    def build(cls, settings: Settings, store: Store | Sequence[Store], names: Sequence[str] | None = None,
              app: Nexq | None = None, clock: Callable[[], float] = time.time) -> Runtime:
        """The runtime over one store, or over several nodes (``names`` name
        them; the first is home to the worker registry, cron and limits),
        for ``app``'s handlers, cron entries and middleware."""
        stores = [store] if isinstance(store, Store) else list(store)
        names = list(names or [f"node{i}" for i in range(len(stores))])
        keys = Keys(settings.namespace)
        events = EventHub()
        local = app.type_defaults if app is not None else {}
        cron_entries = list(app.cron_entries) if app is not None else []
        # A worker publishes its app's types and cron entries next to its facts.
        registry = WorkerRegistry(stores[0], keys, publication=None if app is None else (
            lambda: publication(local, [e.to_json() for e in cron_entries])))
        # One view of the registry for the types' defaults and the doorbells,
        # re-read along with the home node's writes (nexq/runtime/registry_view.py).
        view = RegistryView(registry, riding=True)
        task_types = TaskTypes(local, view.publications, read_fresh=view.fresh_publications)
        if settings.webhook_url:
            check_url(settings.webhook_url, settings.webhook_allow_private)
        webhooks = Webhooks(WebhookSettings(
            url=settings.webhook_url, secret=settings.webhook_secret,
            allow_private=settings.webhook_allow_private, on_failure=settings.webhook_on_failure,
        ))
        # the embedded store lives in one process: nobody else to ring
        wakeup = Wakeup(None if stores[0].kind == "memory" else view.workers)
        cancels, durations = LocalCancels(), Histogram()
        guards = [StoreGuard(s, keys, settings.store_memory_limit, retention=settings.retention, clock=clock)
                  for s in stores]
        lease_ms = int(settings.lease * 1000)
        middleware: list[Middleware] = [
            Admission(guards, names), PublishEvents(events), wakeup, cancels, webhooks,
            HandlerDurations(durations),
        ]
        if app is not None:
            limits = {t: td.limits for t, td in app.handlers.items() if td.limits.any}
            if limits:  # no per-task cost for apps without limits
                middleware.append(LimitTasks(limits, stores[0], keys, lease_ms, clock))
            middleware.extend(app.middleware)
        hooks = Hooks(middleware)
        policy = WebhookPolicy(settings.webhook_allow_private, settings.webhook_url is not None)
        nodes = [
            NodeBroker(s, namespace=settings.namespace, clock=clock, lease_ms=lease_ms,
                       retention=settings.retention, hooks=hooks, webhooks=policy, name=names[i], index=i)
            for i, s in enumerate(stores)
        ]
        nodes[0].producer.rider = view.ride  # the registry's store: its re-reads ride on these writes
        backend: QueueBackend = nodes[0] if len(nodes) == 1 else ClusterBroker(nodes)
        return cls(
            settings=settings, store=stores[0], broker=backend, inspector=backend.inspector(),
            registry=registry, events=events, hooks=hooks, wakeup=wakeup, cancels=cancels,
            webhooks=webhooks, guards=guards,
            cron=CronScheduler(backend, cron_entries, task_types),
            reconciler=ReconcileAgent(backend, interval=settings.reconcile_interval,
                                      grace=settings.reconcile_grace),
            handler_durations=durations, task_types=task_types,
            warm=None if stores[0].kind == "memory" else KeepWarm([n.producer for n in nodes], view),
        )


@asynccontextmanager
async def open_runtime(settings: Settings, app: Nexq | None = None) -> AsyncIterator[Runtime]:
    """Open every store node ``settings`` lists and build the Runtime on them."""
    async with open_nodes(settings.store_nodes, **settings.store_options()) as nodes:
        rt = Runtime.build(settings, [s for _, s in nodes], [name for name, _ in nodes], app)
        try:
            async with background_nursery() as nursery:
                if rt.warm is not None:
                    await nursery.start(rt.warm.run)
                yield rt
                nursery.cancel_scope.cancel()  # stop keeping warm before the release below
        finally:
            # Give back the lane slots reserved ahead (tombstoned at once, so
            # no claimer waits out its grace for them); best effort, 1 s at most.
            with trio.CancelScope(shield=True, deadline=trio.current_time() + 1):
                for node in rt.broker.nodes:
                    with contextlib.suppress(StoreError):
                        await node.producer.release()
