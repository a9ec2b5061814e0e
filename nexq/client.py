"""``nexq.Client``: enqueue and follow tasks from plain (sync) Python code.

    from nexq import Client

    client = Client("pogocache://127.0.0.1:9401", namespace="nexq")
    h = client.enqueue("send_email", {"to": "a@example.com"}, delay=5, priority="high")
    h.status(); h.result(timeout=60); h.cancel()

One client is meant to be shared by every thread of a program (a web app's
request threads): it is thread-safe and keeps a pool of connections. After
its first enqueue the process's keeper thread keeps it warm (``keep_warm``,
:mod:`nexq.client_keeper`): every few seconds of idleness it renews the
numbers reserved ahead, so a lone enqueue stays one round trip however
long the pause (:mod:`nexq.queue.reservations`). Each
call runs the queue code the trio runtime runs (enqueue, status, cancel),
driven in the calling thread on a blocking socket
(:mod:`nexq.store.blocking`): no event loop, no thread hop. The options,
their defaults (the app's handlers', else the live workers') and the
errors are those of ``app.enqueue`` and the REST API.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Self, TypeVar

import attrs

from .client_broker import ClientBroker
from .client_keeper import KEEPER
from .errors import StoreError
from .producing import Producing, Tasks, found, items, result
from .store.blocking import BlockingPool
from .store.cluster_clients import BlockingClusterPool
from .task import Status, Task

if TYPE_CHECKING:
    from .app import Nexq

T = TypeVar("T")
log = logging.getLogger("nexq.client")
_clients: weakref.WeakSet[Client] = weakref.WeakSet()  # for the fork hook below


class Client:
    """A blocking, thread-safe producer and inspector (see module doc)."""

    def __init__(self, store: str | None = None, *, namespace: str | None = None, app: Nexq | None = None,
                 pool_size: int = 8, replicas: int | None = None, keep_warm: bool = True) -> None:
        """The store is ``store``, else ``NEXQ_STORE``, else ``app``'s; the
        namespace likewise (default ``nexq``). With ``app`` its handlers'
        defaults and middleware apply. Does not connect: the first call does.
        ``pool_size``: idle connections kept (more open under load).
        ``replicas`` (else ``NEXQ_STORE_REPLICAS``, else 0): Redis replicas
        that must acknowledge an enqueue (``WAIT``) before it returns; too
        few raise StoreUnavailable (the task may not survive a failover).
        ``keep_warm``: after the first enqueue, the process's keeper thread
        (one for all clients) renews the numbers reserved ahead while the
        client idles (one small write every 2 s), so every lone enqueue is
        one round trip; ``close()`` stops it for this client.

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
        self._keep_warm = keep_warm
        self._kept = False  # handed to the keeper (nexq/client_keeper.py)
        self._closed = False
        self._tick_lock = threading.Lock()  # held while the keeper refreshes
        _clients.add(self)

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
        if not self._kept and self._keep_warm:
            self._keep()
        return Handle(e.task_id, self, e.created)

    def enqueue_many(self, tasks: Tasks) -> list[Handle]:
        """Enqueue ``(type, payload[, options])`` tuples in a constant number
        of round trips; one bad task stores none."""
        done = self.run(lambda node: self._producing.enqueue(node, items(tasks)))
        if not self._kept and self._keep_warm:
            self._keep()
        return [Handle(e.task_id, self, e.created) for e in done]

    def _keep(self) -> None:
        if not self._closed:
            self._kept = True
            self._producing.view.kept = True
            KEEPER.add(self)

    def _warm_tick(self) -> None:
        """The keeper's tick: refresh the idle broker used last (the one a
        lone call takes next) if it is due; the others cool down (their
        numbers expire, see reservations). Never raises."""
        if not self._tick_lock.acquire(blocking=False):
            return
        try:
            if self._closed:
                return
            try:
                broker = self._brokers.pop()
            except IndexError:
                return  # every broker is in use: their calls keep them warm
            try:
                if self._producing.refresh_due(broker):
                    self._pool.run(self._producing.refresh(broker))
            except Exception as exc:  # noqa: BLE001 - the keeper's thread: log, retry at the next tick
                log.debug("keeping the client warm failed (retried): %s", exc)
            finally:
                self._brokers.append(broker)
        finally:
            self._tick_lock.release()

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
        KEEPER.discard(self)
        with self._tick_lock:  # a tick under way ends first
            self._closed = True
        self._producing.view.kept = False
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


def _after_fork() -> None:
    """A forked child keeps no warm thread, and forgets the brokers its
    parent left: their reserved numbers are the parent's to write."""
    for client in list(_clients):
        client._brokers.clear()
        client._tick_lock, client._kept = threading.Lock(), False
        client._producing.view.kept = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


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
