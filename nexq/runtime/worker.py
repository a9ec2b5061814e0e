"""The worker: claim attempts, run handlers, heartbeat, finish; shut down cleanly.

One Worker owns one nursery: a claim loop feeding a zero-capacity memory
channel (so it never claims more than it has free slots), ``concurrency``
handler slots, a heartbeat loop renewing the leases of running attempts and
the registry beat. A handler exception never kills the worker: it becomes
the attempt's outcome. ``stop()`` stops claiming; running attempts get
``grace`` seconds to finish, then are cancelled and released so they run
again at once elsewhere, not after their lease expires.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import traceback
from collections.abc import Sequence
from typing import Any

import trio

from ..app import Context, Nexq
from ..config import parse_queues
from ..errors import Defer, ResultNotSerializable, Retry, StoreError, UnknownTaskType
from ..queue import Claimed
from ..task import Outcome
from ..taskdef import TaskDef
from ..webhook_url import WEBHOOK_QUEUE, WEBHOOK_TYPE
from .boundary import Boundary
from .doorbell import Doorbell, advertise_ip
from .process_pool import ProcessPool
from .ring_inbox import RingInbox
from .runtime import Runtime

log = logging.getLogger("nexq.worker")
DOORBELL_POLL = 0.5  # seconds between idle polls of a worker that has a doorbell
CHECK_GAP = 0.05  # seconds between early checks of the running attempts (doorbell CHECK rings)
START_RETRY = 1.0  # seconds before an attempt that could not start (store error in a hook) runs again


class Worker:
    """Runs tasks of ``app``'s handlers from ``queues`` (``*`` = every queue)."""

    def __init__(
        self,
        runtime: Runtime,
        app: Nexq,
        *,
        concurrency: int = 10,
        queues: Sequence[str] = ("*",),
        worker_id: str | None = None,
        poll_interval: float = 0.05,
        heartbeat: float | None = None,
        thread_limit: int | None = None,
    ) -> None:
        self.rt, self.app, self.broker = runtime, app, runtime.broker
        self.concurrency = concurrency
        self.queues, self.weights = parse_queues(queues)
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.poll_interval = poll_interval
        self.heartbeat_every = heartbeat or self.broker.lease_ms / 3000
        self.threads = trio.CapacityLimiter(thread_limit or concurrency)
        # handler processes of executor="process" handlers, started on first use
        self.processes = ProcessPool(runtime.settings.process_pool_size or concurrency,
                                     runtime.settings.process_max_tasks)
        self.running: dict[tuple[str, int], tuple[Claimed, trio.CancelScope]] = {}
        self.processed = self.failed = 0
        self.started_at = time.time()
        self._stopping = trio.Event()
        self._idle = trio.Event()
        self.doorbell: Doorbell | None = None
        self._inbox = RingInbox()  # wake-ups, and the attempts they named, to claim while idle
        # attempts started before their claim settled: their outcomes wait (Claimer.claim_pushed)
        self._unsettled: dict[tuple[str, int], trio.Event] = {}
        self._check = trio.Event()  # a CHECK ring: look at the running attempts before the next beat
        self._checked = float("-inf")
        self._node_names = runtime.node_names  # Claimed.node -> name, for the registry
        self._webhook_handler = TaskDef(WEBHOOK_TYPE, runtime.webhooks.deliver)
        # Error boundaries: a store error or a malformed entry costs a backoff, never the worker.
        self._claiming = Boundary("claim", log, cap=2.0)
        self._beating = Boundary("heartbeat", log, cap=max(0.5, self.heartbeat_every / 2))

    # -- lifecycle -------------------------------------------------------------

    async def run(self, *, grace: float = 30.0, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until ``stop()``; then drain within ``grace`` and return."""
        send, receive = trio.open_memory_channel[Claimed](0)
        try:
            async with trio.open_nursery() as nursery:
                if self.rt.store.kind != "memory":
                    host = self.rt.settings.store_nodes[0].host  # the address that reaches the home node
                    self.doorbell = Doorbell(self.rt.wakeup.wake, advertise_ip(host), on_check=self._check_now)
                    await nursery.start(self.doorbell.serve)
                unlisten = self.rt.wakeup.listen(self._inbox.rung)
                await self.rt.registry.register(self.info())
                nursery.start_soon(self._beat_loop)
                task_status.started(self.id)
                async with trio.open_nursery() as slots:
                    for _ in range(self.concurrency):
                        slots.start_soon(self._slot, receive.clone())
                    receive.close()
                    async with send:
                        await self._claim_loop(send)
                    unlisten()
                    # Claiming stopped: let running attempts finish in time.
                    with trio.move_on_after(grace):
                        await self._wait_idle()
                    slots.cancel_scope.cancel()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._release_all()
                await self.processes.aclose()
                try:
                    await self.rt.registry.deregister(self.id)
                except StoreError:
                    pass  # its registry keys expire

    def stop(self) -> None:
        """Stop claiming; ``run`` drains and returns."""
        self._stopping.set()
        self.rt.wakeup.wake()  # the claim loop, if it waits, sees it at once

    async def _wait_idle(self) -> None:
        while self.running:
            self._idle = trio.Event()
            await self._idle.wait()

    # -- claiming ----------------------------------------------------------------

    async def _queues(self) -> list[str]:
        if "*" not in self.queues:
            return [*self.queues, WEBHOOK_QUEUE]  # every worker delivers webhooks
        known = await self.rt.inspector.queues()
        return sorted(set(known) | {q for q in self.queues if q != "*"}) or ["default"]

    async def _claim_loop(self, send: trio.MemorySendChannel[Claimed]) -> None:
        reader = self.broker.reader()
        round_no, delay, queues, refreshed = 0, 0.0, ["default"], float("-inf")
        everything = "*" in self.queues
        while not self._stopping.is_set():
            claimed: list[Claimed] = []
            free = self.concurrency - len(self.running)
            rings, hints, settle = self._inbox.rings, [], None
            async with self._claiming:  # a failed round is logged and backed off
                if free and delay and self._inbox:
                    # Idle (the last round found nothing) and rung with the
                    # attempts pushed: lease those at once, lanes unread.
                    hints = self._inbox.take(None if everything else queues)
                    if hints:
                        claimed, settle = await self.broker.claim_pushed(hints, free, self.id)
                if not hints:
                    self._inbox.clear()  # a claim round sees whatever they named
                    if trio.current_time() - refreshed > 1.0:
                        queues, refreshed = await self._queues(), trio.current_time()
                    if free:
                        claimed = await self.broker.claim(queues, free, self.id, reader, round_no, self.weights)
            round_no += 1
            settled = trio.Event() if settle is not None else None
            for c in claimed:
                self.running[(c.spec.id, c.attempt)] = (c, trio.CancelScope())
                if settled is not None:
                    self._unsettled[(c.spec.id, c.attempt)] = settled
                await send.send(c)
            if settle is not None and settled is not None:
                # The handlers run already; their outcomes wait for this.
                try:
                    async with self._claiming:
                        await settle()
                finally:
                    settled.set()
                    for c in claimed:
                        self._unsettled.pop((c.spec.id, c.attempt), None)
            # More may be waiting after a claim round that found work, or
            # hints beyond the free slots: a claim round now.
            if len(hints) > free if hints else claimed:
                delay = 0.0
                continue
            if self._inbox.rings != rings:
                continue  # rung while claiming: look again before sleeping
            if free == 0:
                # Every slot is busy: wait for one to free up.
                self._idle = trio.Event()
                with trio.move_on_after(self.poll_interval):
                    await self._idle.wait()
                continue
            # Idle (or the attempts rung to us claimed: the next ring says
            # when there is more): back off from a fast poll to
            # poll_interval (to DOORBELL_POLL when a doorbell wakes us:
            # polling is then only the fallback for a lost datagram); a
            # local enqueue wakes us at once.
            ceiling = DOORBELL_POLL if self.doorbell is not None else self.poll_interval
            delay = min(max(delay * 2, 0.002), max(ceiling, self.poll_interval))
            if not self._stopping.is_set():
                await self.rt.wakeup.wait(delay)

    # -- running ------------------------------------------------------------------

    async def _slot(self, receive: trio.MemoryReceiveChannel[Claimed]) -> None:
        async with receive:
            async for c in receive:
                try:
                    await self._run_one(c)
                except Exception as exc:  # one attempt's trouble must not end the worker
                    log.error("attempt %d of %s: unexpected %s: %s (its lease expires and it runs again)",
                              c.attempt, c.spec.id, type(exc).__name__, exc)
                    log.debug("attempt %s traceback", c.spec.id, exc_info=exc)
                    self.running.pop((c.spec.id, c.attempt), None)

    async def _run_one(self, c: Claimed) -> None:
        key = (c.spec.id, c.attempt)
        _, scope = self.running[key]
        hooks = self.rt.hooks
        self.rt.cancels.watch(c.spec.id, c.attempt, scope.cancel)
        ctx = Context(c, self.broker, self.app)
        started = time.perf_counter()
        try:
            try:
                await hooks.before_process(ctx)
            except Exception as exc:  # noqa: BLE001 - Defer, a store error taking a limit, a middleware's bug
                await self._not_started(c, exc)
                self.running.pop(key, None)
                return
            try:
                outcome, error, tb, result, retry_in = await self._call(c, ctx, scope)
                if outcome is not None:
                    outcome, error = await self._record(c, outcome, error, tb, result, retry_in)
                # else: cancelled by request or lost lease; another actor decided it.
                self.running.pop(key, None)
            except BaseException as exc:
                # Shutdown (cancelled): the hooks still see the attempt end,
                # shielded so they can give back what they hold.
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await hooks.after_process(ctx, None, None, exc, time.perf_counter() - started)
                raise
            await hooks.after_process(ctx, outcome, result, error, time.perf_counter() - started)
        finally:
            # A shutdown cancel skips the pop above: _release_all hands the
            # attempt back so it runs again at once.
            self.rt.cancels.watch(c.spec.id, c.attempt, None)
            self._idle.set()

    async def _not_started(self, c: Claimed, exc: Exception) -> None:
        """A ``before_process`` hook raised: ``Defer`` runs the attempt later
        (not counted); a store error (e.g. taking a limit's slot) too, after
        START_RETRY s; any other exception fails the attempt like a handler's."""
        if isinstance(exc, Defer):
            await self._record(c, Outcome.DEFERRED, exc, None, None, exc.delay)
        elif isinstance(exc, StoreError):
            log.warning("attempt %d of %s could not start (%s): runs again in %g s",
                        c.attempt, c.spec.id, exc, START_RETRY)
            await self._record(c, Outcome.DEFERRED, exc, None, None, START_RETRY)
        else:
            await self._record(c, Outcome.FAILED, exc, traceback.format_exc(limit=20), None, None)

    async def _record(self, c: Claimed, outcome: Outcome, error: Any, tb: Any, result: Any,
                      retry_in: float | None) -> tuple[Outcome, Any]:
        """Record the attempt's outcome, once its claim settled; returns the
        outcome and error recorded (a result JSON cannot carry turns success
        into ResultNotSerializable). A store error leaves the attempt to its
        lease: the reaper retries it."""
        unsettled = self._unsettled.get((c.spec.id, c.attempt))
        if unsettled is not None:
            await unsettled.wait()
        try:
            if outcome is Outcome.SUCCEEDED:
                try:
                    # False: the outcome was decided elsewhere (lease lost, cancelled)
                    if await self.broker.ack(c, result):
                        self.processed += 1
                    return outcome, error
                except ResultNotSerializable as exc:
                    outcome, error, tb = Outcome.FAILED, exc, None
            if outcome is Outcome.DEFERRED:
                reason = error.reason if isinstance(error, Defer) else str(error)
                await self.broker.defer(c, retry_in or 0.0, reason)
            elif await self.broker.fail(c, error, outcome=outcome, retry_in=retry_in, traceback=tb,
                                        final=self._gives_up(c, error)):
                self.failed += 1
        except StoreError as exc:
            log.warning("could not record the outcome of %s: %s", c.spec.id, exc)
        return outcome, error

    def _gives_up(self, c: Claimed, error: Any) -> bool:
        """The type's retry filters (``retry_on`` / ``dont_retry_on``) end the
        task at this error, whatever retries are left."""
        td = self.app.handlers.get(c.spec.type)
        return td is not None and not td.retries(error)

    async def _call(self, c: Claimed, ctx: Context, scope: trio.CancelScope) -> tuple[Any, ...]:
        """Run the handler; returns (outcome or None if cancelled, error, tb, result, retry_in)."""
        td: TaskDef | None = self.app.handlers.get(c.spec.type)
        if td is None and c.spec.type == WEBHOOK_TYPE:
            td = self._webhook_handler
        with scope:
            try:
                if td is None:
                    raise UnknownTaskType(f"no handler is registered for task type {c.spec.type!r}")
                args = (ctx, c.spec.payload) if td.wants_context else (c.spec.payload,)
                timeout = c.spec.timeout if c.spec.timeout is not None else td.timeout
                with trio.fail_after(timeout) if timeout else contextlib.nullcontext():
                    if td.is_async:
                        result = await td.fn(*args)
                    elif td.target is not None:  # executor="process": killed on timeout or cancel
                        result = await self.processes.run(td.target, c.spec.payload)
                    else:
                        result = await trio.to_thread.run_sync(
                            td.fn, *args, limiter=self.threads, abandon_on_cancel=True
                        )
                return Outcome.SUCCEEDED, None, None, result, None
            except trio.TooSlowError:
                err = TimeoutError(f"the handler ran longer than its timeout of {timeout} s")
                return Outcome.TIMEOUT, err, None, None, None
            except Retry as exc:
                return Outcome.FAILED, exc, None, None, exc.delay
            except Defer as exc:
                return Outcome.DEFERRED, exc, None, None, exc.delay
            except BaseException as exc:  # whatever a handler raises (sys.exit() too) fails its attempt
                if not isinstance(exc, Exception) and isinstance(
                        exc, (trio.Cancelled, KeyboardInterrupt, BaseExceptionGroup)):
                    raise  # cancellation (shutdown, a cancel, a lost lease), or Ctrl-C
                return Outcome.FAILED, exc, traceback.format_exc(limit=20), None, None
        return None, None, None, None, None

    # -- heartbeats and shutdown -----------------------------------------------------

    def _check_now(self) -> None:
        self._check.set()

    async def _next_beat(self) -> None:
        """Return when the next heartbeat is due, or at once on a CHECK ring
        (a cancel elsewhere of an attempt running here), at most every CHECK_GAP s."""
        with trio.move_on_after(self.heartbeat_every):
            await self._check.wait()
            await trio.sleep_until(self._checked + CHECK_GAP)  # a flood of rings costs 20 checks/s
        self._check = trio.Event()
        self._checked = trio.current_time()

    async def _beat_loop(self) -> None:
        while True:
            await self._next_beat()
            async with self._beating:  # a failed beat is logged and backed off
                entries = list(self.running.values())
                states = await self.broker.heartbeat([c for c, _ in entries])
                for (c, scope), (alive, decided) in zip(entries, states):
                    if decided or not alive:
                        # Cancelled elsewhere, or our lease is gone (another
                        # worker may run it): stop the handler now.
                        scope.cancel()
                await self.rt.hooks.after_heartbeat([c for c, _ in entries])
                await self.rt.registry.beat(self.info())

    async def _release_all(self) -> None:
        left = [c for c, _ in self.running.values()]
        for c in left:
            try:
                await self.broker.release(c)
            except StoreError:
                pass  # the lease expires and the reaper retries it
        self.running.clear()

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(self.queues),
            "concurrency": self.concurrency,
            "started_at": self.started_at,
            "last_heartbeat": time.time(),
            "heartbeat_interval": self.heartbeat_every,
            "running": [
                {"id": c.spec.id, "type": c.spec.type, "queue": c.spec.queue,
                 "attempt": c.attempt, "started_at": c.started_at, "node": self._node_names[c.node]}
                for c, _ in self.running.values()
            ],
            "processed": self.processed,
            "failed": self.failed,
            "stopping": self._stopping.is_set(),
            "wake": list(self.doorbell.address) if self.doorbell and self.doorbell.address else None,
        }
