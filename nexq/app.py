"""The Python API: an app with task handlers, enqueue and task handles.

    app = Nexq("pogocache://127.0.0.1:9401")

    @app.task("send_email", max_retries=5, timeout=30)
    async def send_email(ctx, payload):
        await ctx.progress(0.5, "connecting")
        ...

    async with app.connect():
        handle = await app.enqueue("send_email", {"to": "a@example.com"})
        print(await handle.result(timeout=10))

Async handlers run in the worker's trio tasks; plain functions run in a
worker thread (``trio.to_thread``, bounded by a limiter). A handler taking
one argument gets the payload; one taking two gets ``(ctx, payload)``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .config import Settings
from .errors import NexqError, TaskNotFound
from .hooks import Middleware
from .producing import trio_only
from .queue import Claimed, EnqueueRequest, NodeBroker, QueueBackend
from .runtime.runtime import Runtime, open_runtime
from .runtime.task_types import HANDLER_OPTIONS, TypeDefaults, check_options
from .task import Status, Task
from .taskdef import TaskDef

if TYPE_CHECKING:
    from .client import Client

@attrs.frozen
class Context:
    """What a handler gets besides its payload."""

    task: Claimed
    broker: QueueBackend
    app: Nexq

    @property
    def node(self) -> NodeBroker:
        """The store node the attempt was claimed from."""
        return self.broker.nodes[self.task.node]

    @property
    def id(self) -> str:
        return self.task.spec.id

    @property
    def attempt(self) -> int:
        return self.task.attempt

    @property
    def payload(self) -> Any:
        return self.task.spec.payload

    async def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Report progress (0..1 and/or a message); visible in API and dashboard."""
        if fraction is not None and not 0 <= fraction <= 1:
            raise ValueError("progress fraction must be between 0 and 1")
        await self.broker.progress(self.task, fraction, message)

    def progress_sync(self, fraction: float | None = None, message: str | None = None) -> None:
        """``progress`` for handlers running in a worker thread."""
        trio.from_thread.run(self.progress, fraction, message)

    async def parent_results(self) -> list[Any]:
        """The results of the tasks this one depends on, in ``depends_on`` order."""
        tasks = await self.node.inspector().get_many(list(self.task.spec.depends_on))
        return [t.result if t is not None else None for t in tasks]

    async def enqueue(self, type: str, payload: Any = None, **options: Any) -> TaskHandle:
        """Enqueue a follow-up task from inside a handler."""
        [e] = await self.broker.enqueue_many([await self.app.request(type, payload, options)])
        return TaskHandle(e.task_id, self.broker, e.created)


@attrs.define
class TaskHandle:
    """A task you enqueued: ask its status, wait for its result, cancel it."""

    id: str
    broker: QueueBackend = attrs.field(repr=False)
    created: bool = True

    async def info(self) -> Task:
        task = await self.broker.inspector().get(self.id)
        if task is None:
            raise TaskNotFound(self.id)
        return task

    async def status(self) -> Status:
        return (await self.info()).status

    async def result(self, timeout: float | None = None, poll: float = 0.02) -> Any:
        """Wait until the task ends; return its result.

        Raises TaskFailed if it ended dead or cancelled, trio.TooSlowError
        after ``timeout`` seconds.
        """
        with trio.fail_after(timeout) if timeout is not None else _never():
            delay = poll
            while True:
                task = await self.info()
                if task.status is Status.SUCCEEDED:
                    return task.result
                if task.status.terminal:
                    raise TaskFailed(task)
                await trio.sleep(delay)
                delay = min(delay * 1.5, 0.5)

    async def cancel(self) -> bool:
        return await self.broker.cancel(self.id)


class TaskFailed(NexqError):
    """The task ended dead or cancelled; ``.task`` says how."""

    def __init__(self, task: Task) -> None:
        last = task.attempts[-1] if task.attempts else None
        why = f": {last.error_type}: {last.error_message}" if last and last.error_type else ""
        super().__init__(f"task {task.id} ended {task.status.value}{why}")
        self.task = task


class _never:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class Nexq:
    """A Nexq application: handlers, cron entries and a store URL."""

    def __init__(self, store: str | None = None, *, namespace: str = "nexq",
                 middleware: Sequence[Middleware] = ()) -> None:
        self.store_url = store
        self.namespace = namespace
        self.middleware = tuple(middleware)  # hooks around enqueue and processing (nexq.hooks)
        self.handlers: dict[str, TaskDef] = {}
        self.type_defaults: Mapping[str, TypeDefaults] = _HandlerDefaults(self.handlers)
        self.cron_entries: list[Any] = []
        self._runtime: Runtime | None = None
        self._client: Client | None = None
        self._client_lock = threading.Lock()

    # -- handlers ----------------------------------------------------------

    def task(self, name: str | None = None, **options: Any) -> Callable[[Callable[..., Any]], TaskDef]:
        """Decorator registering a handler for task type ``name`` (default: the
        function's name) with defaults for max_retries, timeout, queue, priority,
        and which exceptions are retried (``retry_on`` / ``dont_retry_on``)."""

        def register(fn: Callable[..., Any]) -> TaskDef:
            return self.register_handler(name or fn.__name__, fn, **options)

        return register

    def register_handler(self, type: str, fn: Callable[..., Any], **options: Any) -> TaskDef:
        if not type or not isinstance(type, str):
            raise ValueError("a task type must be a non-empty string")
        if type in self.handlers:
            raise ValueError(f"a handler for {type!r} is already registered")
        check_options(options, (*HANDLER_OPTIONS, "executor", "retry_on", "dont_retry_on"),
                      f"option of @app.task({type!r})")
        td = TaskDef(type, fn, app=self, **options)
        self.handlers[type] = td
        return td

    def cron(self, name: str, schedule: str, type: str, payload: Any = None, *,
             tz: str = "UTC", **options: Any) -> None:
        """Enqueue ``type`` on a cron ``schedule`` (5 fields, or 6 with seconds
        last) in time zone ``tz``; each fire is enqueued once cluster-wide."""
        from .runtime.cron import CronEntry

        self.cron_entries.append(CronEntry.parse(name, schedule, type, payload, tz, options))

    # -- producing -----------------------------------------------------------

    def bind(self, runtime: Runtime | None) -> None:
        """Use ``runtime``'s broker (done by ``nexq run`` / ``nexq worker``)."""
        self._runtime = runtime

    @asynccontextmanager
    async def connect(self, store: str | None = None) -> AsyncIterator[Nexq]:
        """Open the store for producing (and inspecting) from this process.

        The store is ``store`` if given, else ``NEXQ_STORE``, else the app's
        own, else the embedded store; the namespace ``NEXQ_NAMESPACE``, else
        the app's: the same layering as ``nexq run`` / ``nexq worker``. An
        exception raised inside the block leaves it unchanged on every store.
        """
        settings = Settings.load({"store": store}, app={"store": self.store_url, "namespace": self.namespace})
        async with open_runtime(settings, self) as rt:
            self.bind(rt)
            try:
                yield self
            finally:
                self.bind(None)

    def client(self) -> Client:
        """This app's blocking client (:class:`nexq.Client`), for producing
        from sync code: built on first use from the same settings as
        :meth:`connect` (``NEXQ_STORE``, else the app's store; the namespace
        likewise) with this app's handler defaults, then shared (it is
        thread-safe). Raises InvalidStoreURL if that store is the embedded
        one: other processes' workers cannot see it."""
        with self._client_lock:
            if self._client is None:
                from .client import Client

                self._client = Client(app=self)
            return self._client

    @property
    def broker(self) -> QueueBackend:
        return self._bound().broker

    def _bound(self) -> Runtime:
        if self._runtime is None:
            raise NexqError("the app is not connected: use `async with app.connect():`")
        return self._runtime

    async def request(self, type: str, payload: Any, options: Mapping[str, Any]) -> EnqueueRequest:
        """The request to enqueue for ``type`` (:mod:`nexq.runtime.task_types`):
        ``options``, else this app's handler defaults, else those the live
        workers published, else the global ones. Raises ValueError naming
        an unknown option; ``make_spec`` checks the values when enqueued."""
        return await self._bound().task_types.request(type, payload, options, self.type_defaults)

    @trio_only
    async def enqueue(self, type: str, payload: Any = None, **options: Any) -> TaskHandle:
        """Enqueue one task. Options: queue, priority, delay, run_at,
        max_retries, timeout, unique_key, task_id, retry, webhook,
        expires_in, expires_at, depends_on, on_parent_failure, headers (text
        names to text values carried with the task, e.g. a W3C
        ``traceparent``); the ones not given come from the type's defaults. Raises ValueError for an
        unknown option or a bad value."""
        [e] = await self.broker.enqueue_many([await self.request(type, payload, options)])
        return TaskHandle(e.task_id, self.broker, e.created)

    @trio_only
    async def enqueue_many(self, tasks: Sequence[tuple[str, Any] | tuple[str, Any, dict[str, Any]]]) -> list[TaskHandle]:
        """Enqueue (type, payload[, options]) tuples in a constant number of round trips."""
        items = [(t[0], t[1], t[2] if len(t) > 2 else {}) for t in tasks]
        reqs = await self._bound().task_types.requests(items, self.type_defaults)
        return [TaskHandle(e.task_id, self.broker, e.created) for e in await self.broker.enqueue_many(reqs)]

    @trio_only
    async def chain(self, *steps: tuple[Any, ...]) -> list[TaskHandle]:
        """Run steps one after another: each (type, payload[, options])
        depends on the one before (a failed step cancels the rest)."""
        handles: list[TaskHandle] = []
        for step in steps:
            options = dict(step[2]) if len(step) > 2 else {}
            if handles:
                options["depends_on"] = [handles[-1].id]
            handles.append(await self.enqueue(step[0], step[1], **options))
        return handles

    @trio_only
    async def group(
        self, steps: Sequence[tuple[Any, ...]], then: tuple[Any, ...] | None = None
    ) -> tuple[list[TaskHandle], TaskHandle | None]:
        """Fan out ``steps`` at once; with ``then``, a join task that runs when
        all of them succeeded and gets their results via ``ctx.parent_results()``."""
        members = await self.enqueue_many(list(steps))
        join = None
        if then is not None:
            options = dict(then[2]) if len(then) > 2 else {}
            options["depends_on"] = [h.id for h in members]
            join = await self.enqueue(then[0], then[1], **options)
        return members, join

    def handle(self, task_id: str) -> TaskHandle:
        return TaskHandle(task_id, self.broker)


class _HandlerDefaults(Mapping[str, TypeDefaults]):
    """The defaults of an app's handlers by type, as a live view."""

    def __init__(self, handlers: dict[str, TaskDef]) -> None:
        self._handlers = handlers

    def __getitem__(self, type: str) -> TypeDefaults:
        return self._handlers[type].defaults

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)
