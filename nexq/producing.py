"""What :class:`nexq.Client` and :class:`nexq.AsyncClient` share.

Both produce with the queue code the trio runtime uses, driven by their own
transport (docs/design.md, "Producing without trio"): a
:class:`~nexq.queue.node.NodeBroker` over a
:class:`~nexq.store.planned.PlannedStore`, whose store calls the client's
driver performs. This module builds those brokers (the runtime's hooks that
apply to producing: admission with ``--store-memory-limit``, the workers'
doorbells, the app's middleware) and holds the protocol runs both clients
drive: enqueue with the types' defaults, wait for a result.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import sniffio

from .client_broker import ClientBroker
from .cluster_producing import cluster_broker
from .config import Settings
from .errors import InvalidStoreURL, NexqError, TaskNotFound
from .hooks import Hooks, Middleware
from .keys import Keys
from .queue import Enqueued, NodeBroker, WebhookPolicy
from .runtime.guard import Admission, StoreGuard
from .runtime.registry import WorkerRegistry
from .runtime.registry_view import RegistryView
from .runtime.subscribers import Wakeup
from .runtime.task_types import Catalog, Item, TypeDefaults, build_request
from .store.cluster_partition import TaggedPlannedStore, partition_tags
from .store.planned import PlannedStore
from .store.replicas import check_replicas
from .store.transport import single_node
from .task import Status, Task

if TYPE_CHECKING:
    from .app import Nexq

POLL_MAX = 0.5  # seconds between reads of a task whose result is awaited, at most
Tasks = Sequence[tuple[str, Any] | tuple[str, Any, dict[str, Any]]]
P = ParamSpec("P")
R = TypeVar("R")


def items(tasks: Tasks) -> list[Item]:
    """``(type, payload[, options])`` tuples as (type, payload, options) items."""
    return [(t[0], t[1], t[2] if len(t) > 2 else {}) for t in tasks]


class Producing:
    """One client's settings, planned store and shared producing state."""

    def __init__(self, store: str | None, namespace: str | None, app: Nexq | None,
                 replicas: int | None = None) -> None:
        """Settings as ``app.connect()`` layers them: ``store`` / ``namespace``
        if given, else ``NEXQ_STORE`` / ``NEXQ_NAMESPACE``, else the app's.
        Raises InvalidStoreURL for no store, the embedded one or a node list;
        ConfigError for a bad NEXQ_* value; ValueError for ``replicas`` < 0."""
        own = {"store": app.store_url, "namespace": app.namespace} if app is not None else None
        if replicas is not None:
            check_replicas(replicas)
        self.settings = s = Settings.load({"store": store, "namespace": namespace, "store_replicas": replicas},
                                          app=own)
        if s.store is None:
            raise InvalidStoreURL("no store given: pass its URL (nexq.Client('pogocache://host:9401')), set "
                                  "NEXQ_STORE or give the app one; the client needs the store its workers use")
        self.url = single_node(s.store)
        self.keys = Keys(s.namespace)
        self.store: PlannedStore = PlannedStore("pogocache" if self.url.scheme == "pogocache" else "redis")
        if self.url.cluster:  # the registry and the guard on the home partition (nexq/cluster_producing.py)
            self.store = TaggedPlannedStore(partition_tags(self.url.partitions)[0])
        self.local: Mapping[str, TypeDefaults] = app.type_defaults if app is not None else {}
        self.middleware: tuple[Middleware, ...] = app.middleware if app is not None else ()
        self.registry = WorkerRegistry(self.store, self.keys)
        # Rings the live workers' doorbells after a push, and the worker
        # running a task cancelled here (the runtime's own subscriber).
        # The registry's re-reads ride along with enqueue writes (one store: a
        # cluster's writes go to other partitions than the registry's).
        self.view = RegistryView(self.registry, riding=not self.url.cluster)
        self.wakeup = Wakeup(self.workers)

    def broker(self, coalesce: bool = True) -> ClientBroker:
        """A node broker over the planned store. Each has its own reserved
        numbers and account of the store's bytes, like a process of its own:
        give each concurrent user (thread) one. ``coalesce``: its concurrent
        enqueues share round trips (off for a broker one thread uses at a
        time: its calls never overlap, and the check costs each call)."""
        s = self.settings
        middleware: list[Middleware] = []
        if s.store_memory_limit:
            guard = StoreGuard(self.store, self.keys, s.store_memory_limit, retention=s.retention)
            middleware.append(Admission([guard], [self.url.node_name]))
        middleware += [self.wakeup, *self.middleware]

        def make(store: PlannedStore, name: str) -> NodeBroker:
            return NodeBroker(
                store, namespace=s.namespace, lease_ms=int(s.lease * 1000), retention=s.retention,
                hooks=Hooks(middleware), webhooks=WebhookPolicy(s.webhook_allow_private, s.webhook_url is not None),
                name=name, coalesce=coalesce,
            )

        if self.url.cluster:
            return cluster_broker(self.url, make)
        node = make(self.store, self.url.node_name)
        node.producer.rider = self.view.ride
        return node

    # -- protocol runs (driven by the client's transport) ---------------------------

    async def enqueue(self, node: ClientBroker, tasks: Sequence[Item]) -> list[Enqueued]:
        """Enqueue ``tasks`` with their types' defaults (the app's handlers',
        else the live workers'): :func:`~nexq.runtime.task_types.build_request`,
        as every enqueue path. Raises ValueError naming an unknown option or
        a bad value, StoreFull, StoreUnavailable."""
        registered = (await self.types()).defaults
        requests = [build_request(t, p, o, self.local.get(t), registered.get(t)) for t, p, o in tasks]
        return await node.enqueue_many(requests)

    def refresh_due(self, node: ClientBroker) -> bool:
        """Whether :meth:`refresh` would call the store now."""
        return node.producer.warm_due() or self.view.keep_due()

    async def refresh(self, node: ClientBroker) -> bool:
        """Keep ``node``'s next lone enqueue at one round trip while it idles
        (:mod:`nexq.queue.reservations`, "Kept warm"): on a cluster, the
        registry snapshot re-read once ``REFRESH`` s old (no write carries
        it there: :meth:`RegistryView.keep_fresh`); then, if its blocks are
        due, the snapshot read in full if a ride saw workers come or go (or
        it aged past ``RIDE_STALE``), and the producer's blocks renewed, the
        snapshot's re-read riding along. Whether it called the store;
        raises StoreError."""
        called = await self.view.keep_fresh()
        if not node.producer.warm_due():
            return called
        await self.view.snapshot()
        return await node.producer.refresh() or called

    async def types(self) -> Catalog:
        """What the live workers published (:class:`RegistryView`)."""
        return await self.view.catalog()

    async def workers(self) -> list[dict[str, Any]]:
        """The live workers' facts (their doorbells: :class:`Wakeup` rings
        them), from the same snapshot as :meth:`types`."""
        return await self.view.workers()


def found(task: Task | None, task_id: str) -> Task:
    """``task``; TaskNotFound if there is none (unknown, or expired)."""
    if task is None:
        raise TaskNotFound(task_id)
    return task


def settled(task: Task | None, task_id: str) -> tuple[bool, Any]:
    """``(True, result)`` for a succeeded task, ``(False, None)`` for one
    still under way. Raises TaskFailed (dead or cancelled), TaskNotFound."""
    from .app import TaskFailed

    task = found(task, task_id)
    if task.status is Status.SUCCEEDED:
        return True, task.result
    if task.status.terminal:
        raise TaskFailed(task)
    return False, None


async def result(node: ClientBroker, task_id: str, timeout: float | None, poll: float) -> Any:
    """Wait until the task ends; its result. Reads it every ``poll`` s,
    growing to ``POLL_MAX``. Raises TaskFailed, TaskNotFound, TimeoutError
    after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = poll
    while True:
        task = await node.inspector().get(task_id)
        done, value = settled(task, task_id)
        if done:
            return value
        wait = delay
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                status = task.status.value if task is not None else "unknown"
                raise TimeoutError(f"task {task_id} did not end within {timeout:g} s (it is {status})")
            wait = min(wait, left)
        await node.store.sleep(wait)
        delay = min(delay * 1.5, POLL_MAX)


def trio_only(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """``fn`` (a coroutine method of the trio API) refusing, when called, to
    run outside trio, where its coroutine would be left un-awaited (sync
    code) or could not run (asyncio): the error names what to use there."""
    name = fn.__name__

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        try:
            library: str | None = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = None
        if library != "trio":
            where = ("from asyncio use nexq.AsyncClient (`await client.enqueue(...)`)" if library == "asyncio"
                     else "from sync code use app.client().enqueue(...) or my_task.enqueue(payload)")
            raise NexqError(f"app.{name}() is a coroutine for trio code (`await app.{name}(...)` inside "
                            f"`async with app.connect():`); {where}")
        return fn(*args, **kwargs)

    return call
