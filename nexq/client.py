"""``nexq.Client``: enqueue and follow tasks from plain (sync) Python code.

    from nexq import Client

    client = Client("pogocache://127.0.0.1:9401", namespace="nexq")
    h = client.enqueue("send_email", {"to": "a@example.com"}, delay=5, priority="high")
    h.status(); h.result(timeout=60); h.cancel()

One client is meant to be shared by every thread of a program (a web app's
request threads): it is thread-safe and keeps a pool of connections. Each
call runs the queue code the trio runtime runs (enqueue, status, cancel),
driven in the calling thread on a blocking socket
(:mod:`nexq.store.blocking`): no event loop, no thread hop. The options,
their defaults (the app's handlers', else the live workers') and the
errors are those of ``app.enqueue`` and the REST API.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Self, TypeVar

import attrs

from .client_broker import ClientBroker
from .errors import StoreError
from .producing import Producing, Tasks, found, items, result
from .store.blocking import BlockingPool
from .store.cluster_clients import BlockingClusterPool
from .task import Status, Task

if TYPE_CHECKING:
    from .app import Nexq

T = TypeVar("T")


class Client:
    """A blocking, thread-safe producer and inspector (see module doc)."""

    def __init__(self, store: str | None = None, *, namespace: str | None = None, app: Nexq | None = None,
                 pool_size: int = 8, replicas: int | None = None) -> None:
        """The store is ``store``, else ``NEXQ_STORE``, else ``app``'s; the
        namespace likewise (default ``nexq``). With ``app`` its handlers'
        defaults and middleware apply. Does not connect: the first call does.
        ``pool_size``: idle connections kept (more open under load).
        ``replicas`` (else ``NEXQ_STORE_REPLICAS``, else 0): Redis replicas
        that must acknowledge an enqueue (``WAIT``) before it returns; too
        few raise StoreUnavailable (the task may not survive a failover).

        Raises InvalidStoreURL for no store, ``memory://`` (the embedded
        store lives inside one process: use a shared store) or a cluster
        node list, or replicas on Pogocache; ConfigError for a bad NEXQ_*
        value; ValueError for replicas < 0.
        """
        self._producing = Producing(store, namespace, app, replicas)
        self.namespace = self._producing.settings.namespace
        pool = BlockingClusterPool if self._producing.url.cluster else BlockingPool
        self._pool = pool(self._producing.url, size=pool_size,
                                  timeout=self._producing.settings.store_timeout,
                                  replicas=self._producing.settings.store_replicas)
        self._brokers: deque[ClientBroker] = deque()  # idle ones; deque pop/append are thread-safe

    def __repr__(self) -> str:
        return f"Client({str(self._producing.url)!r}, namespace={self.namespace!r})"

    def run(self, fn: Callable[[ClientBroker], Coroutine[Any, Any, T]]) -> T:
        """Run queue code ``fn(broker)`` to its end in this thread and return
        what it returns: the node broker's (and its inspector's) methods,
        whose store calls this client performs."""
        try:
            broker = self._brokers.pop()
        except IndexError:
            broker = self._producing.broker(coalesce=False)  # one thread at a time
        try:
            return self._pool.run(fn(broker))
        finally:
            self._brokers.append(broker)

    # -- producing -----------------------------------------------------------------

    def enqueue(self, type: str, payload: Any = None, **options: Any) -> Handle:
        """Enqueue one task. Options as ``app.enqueue``: queue, priority,
        delay, run_at, max_retries, timeout, unique_key, task_id, retry,
        webhook, expires_in, expires_at, depends_on, on_parent_failure,
        headers; the ones not given come from the type's defaults.

        Raises ValueError naming an unknown option or a bad value (nothing
        written), StoreFull, StoreUnavailable.
        """
        [e] = self.run(lambda node: self._producing.enqueue(node, [(type, payload, options)]))
        return Handle(e.task_id, self, e.created)

    def enqueue_many(self, tasks: Tasks) -> list[Handle]:
        """Enqueue ``(type, payload[, options])`` tuples in a constant number
        of round trips; one bad task stores none."""
        done = self.run(lambda node: self._producing.enqueue(node, items(tasks)))
        return [Handle(e.task_id, self, e.created) for e in done]

    # -- following -------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        """Everything about one task, or None if unknown or expired."""
        return self.run(lambda node: node.inspector().get(task_id))

    def handle(self, task_id: str) -> Handle:
        """The handle of a task enqueued elsewhere."""
        return Handle(task_id, self)

    def cancel(self, task_id: str) -> bool:
        """Cancel a waiting, scheduled, pending or running task (its worker
        is told at once); False if it already ended or does not exist."""
        return self.run(lambda node: node.cancel(task_id))

    def result(self, task_id: str, timeout: float | None = None, poll: float = 0.02) -> Any:
        """Wait until the task ends; its result. Raises TaskFailed (dead or
        cancelled), TaskNotFound, TimeoutError after ``timeout`` s."""
        return self.run(lambda node: result(node, task_id, timeout, poll))

    # -- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Give back the slots the idle brokers reserved ahead (so no claimer
        waits for them), then close the pooled connections (calls under way
        finish first). A store error while giving back is ignored: the
        claimers skip those slots after their grace period."""
        while self._brokers:
            try:
                broker = self._brokers.pop()
            except IndexError:
                break
            with contextlib.suppress(StoreError):
                self._pool.run(broker.producer.release())
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@attrs.define
class Handle:
    """A task enqueued through a :class:`Client`: its status, result, cancel."""

    id: str
    client: Client = attrs.field(repr=False)
    created: bool = True  # False: a live task already held the unique_key; this is that task

    def info(self) -> Task:
        """Everything about the task; TaskNotFound if it expired."""
        return found(self.client.get(self.id), self.id)

    def status(self) -> Status:
        return self.info().status

    def result(self, timeout: float | None = None, poll: float = 0.02) -> Any:
        """See :meth:`Client.result`."""
        return self.client.result(self.id, timeout, poll)

    def cancel(self) -> bool:
        return self.client.cancel(self.id)
