"""The Broker: enqueue, claim, heartbeat and finish attempts over a Store.

Every state change has one writer, chosen by a single atomic command:
``SET spec NX`` creates a task, a lane slot swap hands an attempt to one
consumer, ``SET lease NX`` makes that consumer its runner, and
``SET fin:{id}:{a} NX`` decides how attempt ``a`` ended: worker ack, lease
reaper and cancel race on that one register and only the winner writes
what follows (next attempt, dead letter, result). See docs/design.md.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..codec import dumps, encode_attempt
from ..errors import StoreError
from ..keys import Keys
from ..runtime.doorbell import Ringer
from ..runtime.events import EventHub
from ..runtime.webhooks import WebhookSettings
from ..store import Batch, Store
from ..task import (
    Attempt,
    Outcome,
    TaskSpec,
)
from .acks import AckGroup
from .enqueue import Enqueued, EnqueueRequest, Producer
from .finish import FIN_GRACE, TERMINAL_OUTCOMES, MinuteCounters, expired_attempt
from .lanes import PRIORITIES, LaneReader, read_lanes
from .wheel import Entry, Wheel

if TYPE_CHECKING:
    from .inspect import Inspector

__all__ = ["Broker", "Claimed", "EnqueueRequest", "Enqueued"]

DAY = 86_400


@attrs.frozen
class Claimed:
    """An attempt this worker owns: run it, heartbeat it, then finish it."""

    spec: TaskSpec
    attempt: int
    worker: str
    started_at: float
    node: int = 0  # which store node it came from (see nexq.queue.cluster)


class Broker(Producer):
    """The queue protocols over one Store, in one key namespace."""

    def __init__(
        self,
        store: Store,
        *,
        namespace: str = "nexq",
        clock: Callable[[], float] = time.time,
        lease_ms: int = 30_000,
        retention: float = 7 * DAY,
        bucket_ms: int = 100,
        hole_grace: float = 5.0,
        fair_every: int = 10,
        events: EventHub | None = None,
        doorbells: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
    ) -> None:
        self.store, self.keys, self.clock = store, Keys(namespace), clock
        self.lease_ms, self.retention = lease_ms, retention
        self.wheel = Wheel(store, self.keys, clock, bucket_ms)
        self.hole_grace = hole_grace
        self.fair_every = fair_every  # every Nth claim round visits low priority first
        self._known_queues: set[str] = set()
        # in-process cancel hooks of running attempts: (task, attempt) -> callback
        self._cancel_hooks: dict[tuple[str, int], Callable[[], None]] = {}
        self._wakeup = trio.Event()  # set by local enqueues to wake local claimers
        self.events = events or EventHub()
        # Who to ring after pushing work (see nexq.runtime.doorbell): the runtime
        # passes the worker registry's listing; None rings nobody.
        self._list_workers = doorbells
        self.ringer = Ringer()
        self._rng = random.Random()
        self.webhook = WebhookSettings()  # the process's webhook settings (Runtime sets them)
        # Set by the store guard near the memory limit: enqueues raise StoreFull.
        self.refusing: str | None = None
        self.minutes = MinuteCounters()  # m:{minute}:{kind}, one command per increment
        self._acks = AckGroup(self)  # successes finishing together share round trips
        # A cluster facade sets this so node-local enqueues wake its claimers.
        self.on_wake: Callable[[], None] | None = None

    # -- enqueue -------------------------------------------------------------

    def watch_cancel(self, c: Claimed, hook: Callable[[], None] | None) -> None:
        """Call ``hook`` if this process cancels ``c`` (None: stop watching).
        Other processes' cancels arrive through the heartbeat instead."""
        if hook is None:
            self._cancel_hooks.pop((c.spec.id, c.attempt), None)
        else:
            self._cancel_hooks[(c.spec.id, c.attempt)] = hook

    def cancelled_locally(self, task_id: str, attempt: int) -> None:
        hook = self._cancel_hooks.pop((task_id, attempt), None)
        if hook is not None:
            hook()

    def wake(self) -> None:
        """Wake claimers in this process."""
        self._wakeup.set()
        self._wakeup = trio.Event()
        if self.on_wake is not None:
            self.on_wake()

    def reader(self) -> LaneReader:
        """Per-consumer claim state to pass to :meth:`claim`."""
        return LaneReader(self.store, self.keys)

    def inspector(self) -> Inspector:
        """The read and admin model over this broker's keys."""
        from .inspect import Inspector

        return Inspector(self)

    async def announce(self) -> None:
        """Work was pushed: wake local claimers and ring other workers' doorbells."""
        self.wake()
        if self._list_workers is None:
            return
        if self.ringer.stale:
            try:
                self.ringer.update(await self._list_workers())
            except StoreError:  # only delays wake-ups to the workers' next poll
                self.ringer.update([])
        self.ringer.ring()

    async def wait_for_work(self, timeout: float) -> None:
        """Sleep until a local enqueue or ``timeout`` seconds, whichever first."""
        with trio.move_on_after(timeout):
            await self._wakeup.wait()

    # -- claim ---------------------------------------------------------------

    async def claim(
        self,
        queues: Sequence[str],
        capacity: int,
        worker: str,
        reader: LaneReader,
        round_no: int = 0,
        weights: dict[str, float] | None = None,
    ) -> list[Claimed]:
        """Claim up to ``capacity`` attempts from ``queues`` for ``worker``.

        Strict priority (9 first) across the given queues, except every
        ``fair_every``-th round, which visits lanes lowest priority first so
        low priority still progresses under sustained high-priority load.
        """
        if capacity <= 0:
            return []
        paused, states = await read_lanes(self.store, self.keys, queues)
        if weights:
            # Weighted queues: each round draws an order of the queues with
            # chances proportional to their weights (a queue of weight 3 goes
            # first three times as often as one of weight 1), then takes each
            # queue's lanes high priority first.
            drawn = sorted(queues, key=lambda q: -(self._rng.random() ** (1 / weights.get(q, 1.0))))
            order = [(q, p) for q in drawn for p in PRIORITIES if not paused[q]]
        else:
            order = [(q, p) for p in PRIORITIES for q in queues if not paused[q]]
            if self.fair_every and round_no % self.fair_every == self.fair_every - 1:
                order.reverse()
        plan, wants, left = [], [], capacity
        for lane in order:
            st = states[lane]
            n = min(st.tail - st.head, left)
            if n > 0:
                # Under contention, peek a wider window and lease a random
                # part of it, so competing consumers rarely race for the
                # same slots. Alone, a consumer takes strictly FIFO.
                window = min(st.tail - st.head, n * 4 + 8) if reader.contended else n
                plan.append((lane, st.head, window))
                wants.append(n)
                left -= n
            if not left:
                break
        if not plan:
            return []
        slots = await reader.peek(plan)
        chosen = reader.choose(slots, wants)
        return await self._start(plan, slots, chosen, reader, worker)

    async def _start(
        self, plan: list[Any], slots: list[Any], waiting: list[Any], reader: LaneReader, worker: str
    ) -> list[Claimed]:
        """Lease each waiting attempt (``SET NX``: one runner), then in one
        pipeline schedule the lease checks and settle the slots."""
        from ..codec import decode_spec

        now = self.clock()
        answers: list[Any] = []
        if waiting:
            b = Batch()
            for s in waiting:
                r = s.ref
                b.set(self.keys.lease(r.task_id, r.attempt), f"{worker}|{now:.3f}", nx=True, px=self.lease_ms)
                b.mget([self.keys.spec(r.task_id), self.keys.fin(r.task_id, r.attempt)])
            answers = await self.store.execute(b)
        claimed: list[Claimed] = []
        expired: list[Claimed] = []
        resolved: set[str] = set()
        after = Batch()
        for i, s in enumerate(waiting):
            r = s.ref
            leased, (spec_raw, fin_raw) = answers[2 * i], answers[2 * i + 1]
            if not leased:
                reader.lost_races += 1
                continue  # another consumer holds it; it settles the slot
            resolved.add(s.key)
            if spec_raw is None or fin_raw is not None:
                after.delete(self.keys.lease(r.task_id, r.attempt))  # deleted or already decided
                continue
            spec = decode_spec(spec_raw)
            if spec.expires_at is not None and now >= spec.expires_at and r.attempt == 1:
                expired.append(Claimed(spec, r.attempt, worker, now))
                continue
            claimed.append(c := Claimed(spec, r.attempt, worker, now))
            self.events.publish("task", id=c.spec.id, type=c.spec.type, queue=c.spec.queue,
                                status="running", attempt=c.attempt, worker=worker)
        due = now + self.lease_ms / 1000 + 0.5
        # Lease checks first: if we die inside this pipeline, either the
        # slots still hold their refs or the checks are already scheduled.
        self.wheel.add_ops(after, [Entry("L", c.spec.id, c.attempt, due, worker) for c in claimed])
        reader.settle(plan, slots, resolved, after)
        reader.contended = reader.lost_races > 0
        reader.lost_races = 0
        if len(after):
            await self.store.execute(after)
        for c in expired:
            await self._finish(c.spec, expired_attempt(c.attempt, now), lease_held=True)
        return claimed

    # -- while running -------------------------------------------------------

    async def heartbeat(self, running: Sequence[Claimed]) -> list[tuple[bool, bool]]:
        """Renew leases; per attempt: (lease still ours, decided elsewhere).

        ``decided elsewhere`` is True once a cancel (or the reaper) won the
        attempt's outcome: the handler should be cancelled.
        """
        if not running:
            return []
        b = Batch()
        for c in running:
            b.set(self.keys.lease(c.spec.id, c.attempt), f"{c.worker}|{c.started_at:.3f}", xx=True, px=self.lease_ms)
            b.exists(self.keys.fin(c.spec.id, c.attempt))
        answers = await self.store.execute(b)
        return [(bool(answers[2 * i]), bool(answers[2 * i + 1])) for i in range(len(running))]

    async def progress(self, c: Claimed, fraction: float | None, message: str | None) -> None:
        data = dumps({"fraction": fraction, "message": message, "at": self.clock()})
        await self.store.set(self.keys.progress(c.spec.id), data, px=int(self.retention * 1000))

    # -- outcomes --------------------------------------------------------------

    async def ack(self, c: Claimed, result: Any = None) -> bool:
        """Attempt succeeded. False if another actor already decided it
        (the lease was lost or the task cancelled): the result is dropped."""
        attempt = Attempt(c.attempt, Outcome.SUCCEEDED, c.worker, c.started_at, self.clock())
        return await self._acks.ack(c.spec, attempt, result)

    async def fail(
        self,
        c: Claimed,
        error: BaseException | None,
        *,
        outcome: Outcome = Outcome.FAILED,
        retry_in: float | None = None,
        traceback: str | None = None,
    ) -> bool:
        """Attempt failed: retried with backoff (or ``retry_in``) while
        retries remain, else dead. False if the outcome was decided elsewhere."""
        attempt = Attempt(
            c.attempt,
            outcome,
            c.worker,
            c.started_at,
            self.clock(),
            type(error).__name__ if error else outcome.value,
            str(error) if error else None,
            traceback,
        )
        return await self._finish(c.spec, attempt, retry_in=retry_in, lease_held=True)

    async def defer(self, c: Claimed, delay: float, reason: str) -> bool:
        """Do not run this attempt now (a limit was reached): it runs again
        after ``delay`` seconds and does not count against the retries."""
        attempt = Attempt(c.attempt, Outcome.DEFERRED, c.worker, c.started_at, self.clock(),
                          "Limited", reason)
        return await self._finish(c.spec, attempt, retry_in=max(delay, 0.001), lease_held=True, counts=False)

    async def release(self, c: Claimed) -> bool:
        """Give an attempt back at shutdown: it runs again at once and does
        not count against the retries."""
        attempt = Attempt(c.attempt, Outcome.LOST, c.worker, c.started_at, self.clock(), "Interrupted",
                          "worker shut down before the attempt finished")
        return await self._finish(c.spec, attempt, retry_in=0.0, lease_held=True, counts=False)

    async def _finish(
        self,
        spec: TaskSpec,
        attempt: Attempt,
        *,
        result: Any = None,
        retry_in: float | None = None,
        lease_held: bool = False,
        counts: bool = True,
        check_after: bool = False,
    ) -> bool:
        """Decide attempt's outcome once; the winner writes what follows.

        ``check_after`` first schedules a check that redoes the follow-up if
        this process dies before writing it (the reaper's and cancel's case;
        a worker's attempt already has its lease check on the wheel).
        """
        from .finish import FOLLOW_UP_CHECK, follow_up

        tid, a = spec.id, attempt.number
        b = Batch()
        if check_after:
            due = self.clock() + FOLLOW_UP_CHECK
            self.wheel.add_ops(b, [Entry("L", tid, a, due, attempt.worker or "")])
        # A terminal outcome's record gets its TTL now (one EXPIRE less later).
        px = int(self.retention + FIN_GRACE) * 1000 if attempt.outcome in TERMINAL_OUTCOMES else None
        b.set(self.keys.fin(tid, a), encode_attempt(attempt, result, retry_in, counts), nx=True, px=px)
        if lease_held:
            b.delete(self.keys.lease(tid, a))
        won = (await self.store.execute(b))[-2 if lease_held else -1]
        if won:
            await follow_up(self, spec, attempt, retry_in=retry_in, counts=counts)
        return bool(won)

    async def cancel(self, task_id: str, reason: str = "cancelled on request") -> bool:
        """Cancel a waiting, scheduled, pending or running task; False if it had ended."""
        from .finish import cancel

        return await cancel(self, task_id, reason)

    async def promote(self, entries: Sequence[Entry]) -> None:
        """Move due attempts into their lanes, each exactly once (NX marker)."""
        from .finish import promote

        await promote(self, entries)

    async def run_due(self) -> int:
        """One scheduler step: claim ended wheel buckets (waiting for any
        claimed ahead of time), promote due attempts, reap expired leases.
        Returns the number of buckets handled."""
        buckets = await self.wheel.claim_ended()
        for bucket in buckets:
            wait = self.wheel.bucket_end(bucket) - self.clock()
            if wait > 0:
                await trio.sleep(wait)
        if buckets:
            await self._handle(await self.wheel.read(buckets))
            await self.wheel.drop(buckets)
        return len(buckets)

    async def _handle(self, entries: list[Entry]) -> None:
        from .finish import expire, promote, reap

        await promote(self, [e for e in entries if e.kind == "P"])
        await reap(self, [e for e in entries if e.kind == "L"])
        await expire(self, [e for e in entries if e.kind == "X"])

    async def sweep(self, older_than: float = 5.0) -> int:
        """Repair buckets a dead scheduler claimed but never finished."""
        buckets = await self.wheel.leftovers(older_than)
        if buckets:
            await self._handle(await self.wheel.read(buckets))
            await self.wheel.drop(buckets)
        return len(buckets)
