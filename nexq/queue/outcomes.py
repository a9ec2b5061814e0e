"""Outcomes: decide once how each attempt ended, then write what follows.

Keys: ``fin:{id}:{a}`` (the decision, ``SET NX``), then, by the winner
only, ``cur`` (next attempt, retry time or terminal state), lane slots or
wheel entries for the next attempt, the ``cnt`` and ``m`` counters, and on
a terminal state the TTLs of every key of the task. Worker ack, lease
reaper, cancel and deadlines race on the one ``fin`` register; the loser
writes nothing. See docs/design.md, "Outcomes".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..codec import decode_cur, decode_spec, encode_attempt, encode_cur
from ..hooks import Terminal
from ..keys import MARKER_MS, TERMINAL_STATES, State
from ..store import Batch
from ..task import Attempt, Outcome, TaskSpec
from .acks import AckGroup
from .context import FIN_GRACE, NodeContext
from .counts import TerminalCounts
from .lanes import Ref, push
from .malformed import decoded
from .requests import Claimed
from .wheel import Entry

if TYPE_CHECKING:
    from .node import NodeBroker

FOLLOW_UP_CHECK = 10.0  # seconds after a decision to check its follow-up was written
TERMINAL_OUTCOMES = frozenset({Outcome.SUCCEEDED, Outcome.CANCELLED})


def expired_attempt(attempt: int, now: float) -> Attempt:
    return Attempt(attempt, Outcome.CANCELLED, None, None, now, "Expired",
                   "the task was not started before its deadline (expires_at)")


def _text(value: object) -> str:
    """``str(value)`` that any handler's exception can give and JSON can carry:
    a ``__str__`` that raises, or lone surrogates, never fail the attempt's record."""
    try:
        text = str(value)
    except Exception:  # noqa: BLE001 - a handler's exception may break its own __str__
        text = f"<unprintable {type(value).__name__}>"
    return text.encode("utf-8", "replace").decode("utf-8")


def lease_holder(raw: bytes | None) -> tuple[str | None, float | None]:
    """(worker, started_at) from a lease value ``worker|started``; Nones without one."""
    if raw is None:
        return None, None
    worker, _, since = raw.decode(errors="replace").rpartition("|")
    try:
        return worker or None, float(since)
    except ValueError:
        return worker or None, None


class Outcomes:
    """Decides outcomes on one node (a part of :class:`~nexq.queue.node.NodeBroker`)."""

    def __init__(self, ctx: NodeContext, node: NodeBroker) -> None:
        self.ctx, self.node = ctx, node
        self._acks = AckGroup(self)  # successes finishing together share round trips
        self.counts = TerminalCounts(ctx.keys, ctx.retention)  # ended tasks, expiring with them

    # -- a worker's outcomes -------------------------------------------------------

    async def ack(self, c: Claimed, result: Any = None) -> bool:
        """Attempt succeeded. False if another actor already decided it
        (the lease was lost or the task cancelled): the result is dropped."""
        attempt = Attempt(c.attempt, Outcome.SUCCEEDED, c.worker, c.started_at, self.ctx.clock())
        return await self._acks.ack(c.spec, attempt, result, c.free)

    async def fail(self, c: Claimed, error: BaseException | None, *, outcome: Outcome = Outcome.FAILED,
                   retry_in: float | None = None, traceback: str | None = None, final: bool = False) -> bool:
        """Attempt failed: retried with backoff (or ``retry_in``) while
        retries remain, else dead; ``final`` (the type's retry filters gave
        up on this error): dead at once. False if the outcome was decided elsewhere."""
        attempt = Attempt(c.attempt, outcome, c.worker, c.started_at, self.ctx.clock(),
                          type(error).__name__ if error else outcome.value,
                          _text(error) if error else None, _text(traceback) if traceback else None)
        return await self.decide(c.spec, attempt, retry_in=retry_in, lease_held=True, final=final)

    async def defer(self, c: Claimed, delay: float, reason: str) -> bool:
        """Do not run this attempt now (a limit was reached): it runs again
        after ``delay`` seconds and does not count against the retries."""
        attempt = Attempt(c.attempt, Outcome.DEFERRED, c.worker, c.started_at, self.ctx.clock(),
                          "Limited", reason)
        return await self.decide(c.spec, attempt, retry_in=max(delay, 0.001), lease_held=True, counts=False)

    async def release(self, c: Claimed) -> bool:
        """Give an attempt back at shutdown: it runs again at once and does
        not count against the retries."""
        attempt = Attempt(c.attempt, Outcome.HANDED_BACK, c.worker, c.started_at, self.ctx.clock(), "Interrupted",
                          "worker shut down before the attempt finished")
        return await self.decide(c.spec, attempt, retry_in=0.0, lease_held=True, counts=False)

    async def cancel(self, task_id: str, reason: str = "cancelled on request") -> bool:
        """Cancel a waiting, scheduled, pending or running task. False if it
        already ended (or does not exist). The worker running it learns of
        it through the ``after_decided`` hook: at once in this process, by
        its doorbell in another (else at its next heartbeat)."""
        k, store = self.ctx.keys, self.ctx.store
        for _ in range(5):
            spec_raw, cur_raw = await store.mget([k.spec(task_id), k.cur(task_id)])
            if spec_raw is None or cur_raw is None:
                return False
            a, state, _, _ = decode_cur(cur_raw)
            if state in TERMINAL_STATES:
                return False
            # A running attempt keeps who runs it and since when: the decision
            # names its worker, whose doorbell the after_decided hook rings.
            worker, started = lease_holder(await store.get(k.lease(task_id, a)))
            attempt = Attempt(a, Outcome.CANCELLED, worker, started, self.ctx.clock(), "Cancelled", reason)
            spec = decode_spec(spec_raw)
            if await self.decide(spec, attempt, check_after=True):
                if state in (State.SCHEDULED, State.RETRYING):
                    await self._unschedule(spec, a)
                return True
            # attempt a was decided meanwhile (finished or retried): look again
        return False

    async def _unschedule(self, spec: TaskSpec, a: int) -> None:
        """A cancelled attempt that waited for its time leaves the scheduled
        count now, not when its wheel entry comes due: whoever takes its move
        marker (``mv``, this or the promoter) counts it out, once."""
        k = self.ctx.keys
        if await self.ctx.store.set(k.moved(spec.id, a), b"1", nx=True, px=MARKER_MS):
            await self.ctx.store.incrby(k.count(spec.queue, State.SCHEDULED), -1)

    # -- the decision --------------------------------------------------------------

    async def decide(self, spec: TaskSpec, attempt: Attempt, *, result: Any = None,
                     retry_in: float | None = None, lease_held: bool = False, counts: bool = True,
                     check_after: bool = False, final: bool = False) -> bool:
        """Decide ``attempt``'s outcome once (``SET fin NX``); the winner
        writes what follows. Returns whether this call won.

        ``check_after`` first schedules a check that redoes the follow-up if
        this process dies before writing it (the reaper's and cancel's case;
        a worker's attempt already has its lease check on the wheel).
        ``final`` (a failure with no retry, whatever retries are left) is
        kept in the outcome record, so a redone follow-up decides the same.
        """
        k, tid, a = self.ctx.keys, spec.id, attempt.number
        b = Batch(durable=True)  # --store-replicas: the decision survives a failover
        if check_after:
            due = self.ctx.clock() + FOLLOW_UP_CHECK
            self.ctx.wheel.add_ops(b, [Entry("L", tid, a, due, attempt.worker or "")])
        # A terminal outcome's record gets its TTL now (one EXPIRE less later).
        px = int(self.ctx.retention + FIN_GRACE) * 1000 if attempt.outcome in TERMINAL_OUTCOMES else None
        b.set(k.fin(tid, a), encode_attempt(attempt, result, retry_in, counts, final), nx=True, px=px)
        if lease_held:
            b.delete(k.lease(tid, a))
        won = (await self.ctx.store.execute(b))[-2 if lease_held else -1]
        if won:
            await self.follow_up(spec, attempt, retry_in=retry_in, counts=counts, final=final)
        return bool(won)

    async def follow_up(self, spec: TaskSpec, attempt: Attempt, *, retry_in: float | None,
                        counts: bool, final: bool = False) -> None:
        """Write the task's next state after ``attempt`` ended (winner only,
        or the lease check redoing a dead winner's follow-up); ``final``: dead."""
        ctx = self.ctx
        k, tid, a, now = ctx.keys, spec.id, attempt.number, ctx.clock()
        minute = int(now // 60)
        await ctx.hooks.after_decided(self.node, spec, attempt)
        raw = await ctx.store.get(k.cur(tid))
        cur = decoded(decode_cur, raw, k.cur(tid)) if raw else None
        free = cur[3] if cur else 0
        if attempt.outcome in TERMINAL_OUTCOMES:  # cur keeps free: shown attempts count it out
            await self._terminal(spec, a, attempt.outcome.value, now, free, minute)
            return
        if not counts:
            free += 1
        used = a - free
        b = Batch()
        token = None
        if counts:
            token = ctx.minutes.incr(b, k, minute, "failed")
            b.incr(k.count(spec.queue, "failed"))  # failed attempts, ever: a monotonic counter
        if used > spec.max_retries or (final and counts):
            await self._terminal(spec, a, State.DEAD.value, now, free, minute, b, token)
            return
        delay = retry_in if retry_in is not None else spec.retry.delay(used)
        if delay <= 0:
            b.set(k.cur(tid), encode_cur(a + 1, State.PENDING, now, free))
            await ctx.store.execute(b)
            ctx.minutes.armed(token)
            await push(ctx.store, k, {(spec.queue, spec.priority): [Ref(tid, a + 1)]})
            await ctx.hooks.after_push(self.node)
            return
        b.set(k.cur(tid), encode_cur(a + 1, State.RETRYING, now + delay, free))
        b.incr(k.count(spec.queue, State.SCHEDULED))
        await ctx.store.execute(b)
        ctx.minutes.armed(token)
        late = await ctx.wheel.add([Entry("P", tid, a + 1, now + delay)])
        if late:
            await self.node.promote(late)

    # -- terminal states -----------------------------------------------------------

    async def _terminal(self, spec: TaskSpec, a: int, state: str, now: float, free: int, minute: int,
                        b: Batch | None = None, token: tuple[int, str] | None = None) -> None:
        """Record a terminal state; every key of the task now expires."""
        k = self.ctx.keys
        b = b or Batch()
        self.terminal_ops(spec, a, state, now, free, b)
        b.incr(k.count(spec.queue, state))  # the lifetime total
        counted = self.counts.add(b, spec.queue, state, now)  # the count the listing matches
        if state == State.SUCCEEDED:
            token = self.ctx.minutes.incr(b, k, minute, "processed")
        # Read the children after cur turned terminal, in the same round trip: a
        # child appending itself later reads that terminal cur (see workflow.py).
        kids_raw = (await self.ctx.store.execute(b.get(k.kids(spec.id))))[-1]
        self.ctx.minutes.armed(token)
        self.counts.armed(counted)
        await self.terminal_done(spec, a, state, kids_raw)

    def terminal_ops(self, spec: TaskSpec, a: int, state: str, now: float, free: int, b: Batch) -> None:
        """Add a terminal state's writes to ``b`` (not the counters, not the
        read of ``kids``, which the caller adds after them).

        Keys that already carry a TTL are left alone: ``prog`` (written with
        TTL R), ``hook`` (appended with TTL R; refreshed here only when a
        webhook may have recorded on it, so its records stay as long as the
        task) and a succeeded or cancelled attempt's own ``fin`` (written with
        TTL R + FIN_GRACE by :meth:`decide`).

        ``cur`` (which decides whether the task is listed) expires when the
        count window of ``now`` does (:mod:`nexq.queue.counts`): R plus at
        most R / 64; the other keys up to a second later (EXPIRE's unit).
        """
        k, tid = self.ctx.keys, spec.id
        ttl_ms = self.counts.ttl_ms(now, now)
        ttl_s = -(-ttl_ms // 1000)
        b.set(k.cur(tid), encode_cur(a, state, now, free), px=ttl_ms)
        last_fin = a if state == State.DEAD else a - 1  # succeeded / cancelled: fin:a has its TTL
        b.expire(k.spec(tid), ttl_s).expire(k.index(spec.seq), ttl_s)
        if spec.webhook is not None or self.ctx.webhooks.default_url:
            b.expire(k.hooks(tid), ttl_s)
        for n in range(1, last_fin + 1):
            b.expire(k.fin(tid, n), ttl_s)
        if spec.unique_key is not None:
            b.delete(k.unique(spec.unique_key))

    async def terminal_done(self, spec: TaskSpec, a: int, state: str, kids_raw: bytes | None) -> None:
        """After the terminal writes: expire the children list and announce
        the end (``after_terminal``: events, webhooks, workflow edges)."""
        kids: tuple[str, ...] = ()
        if kids_raw:
            # Only a parent has a kids list to expire (a child appending after
            # the read resolves its edge itself).
            await self.ctx.store.expire(self.ctx.keys.kids(spec.id), self.ctx.retention_s)
            kids = tuple(dict.fromkeys(c for c in kids_raw.decode().split(",") if c))
        await self.ctx.hooks.after_terminal(self.node, Terminal(spec, a, state, kids))
