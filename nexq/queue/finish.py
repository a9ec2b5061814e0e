"""What follows an outcome, due entries, and cancellation.

Only the winner of ``fin:{id}:{a}`` calls :func:`follow_up`, so the next
attempt, the dead letter or the result is written exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ..codec import (
    decode_attempt,
    decode_cur,
    decode_follow_up,
    decode_spec,
    encode_cur,
)
from ..keys import Keys
from ..runtime.webhooks import WEBHOOK_QUEUE, WEBHOOK_TYPE
from ..store import Batch
from ..task import Attempt, Outcome, RetryPolicy, TaskSpec
from .lanes import Ref, push
from .wheel import Entry
from .workflow import kids_key, parent_ended

if TYPE_CHECKING:
    from .engine import Broker

MINUTE_TTL = 2 * 86_400
MARKER_MS = 86_400_000
FOLLOW_UP_CHECK = 10.0  # seconds after a decision to check its follow-up was written
# A terminal outcome's fin register is written with TTL R + this, so it
# outlives the follow-up check (and its repair) whatever the retention.
FIN_GRACE = 3_600
TERMINAL_OUTCOMES = (Outcome.SUCCEEDED, Outcome.CANCELLED)


class MinuteCounters:
    """The expiring per-minute counters ``m:{minute}:{kind}``, at one
    command per increment once warm.

    The first increment of a minute (per kind) by this process is preceded
    by ``SET m 0 NX PX ttl``: the key is only ever created with its TTL and
    ``INCR`` keeps it, so no ``EXPIRE`` per increment is needed and a crash
    between the two commands still leaves an expiring key. A minute counts
    as armed only once a batch carrying its ``SET NX`` has succeeded.
    """

    def __init__(self) -> None:
        self._armed: set[tuple[int, str]] = set()

    def incr(self, b: Batch, keys: Keys, minute: int, kind: str, n: int = 1) -> tuple[int, str] | None:
        """Add ``n`` to the counter in ``b``; returns what to pass to
        :meth:`armed` after ``b`` succeeded (None if nothing to record)."""
        key = keys.minute(minute, kind)
        if (minute, kind) in self._armed:
            b.incrby(key, n)
            return None
        b.set(key, 0, nx=True, px=MINUTE_TTL * 1000).incrby(key, n)
        return (minute, kind)

    def armed(self, token: tuple[int, str] | None) -> None:
        if token is not None:
            if len(self._armed) > 16:  # only the current minutes matter
                self._armed.clear()
            self._armed.add(token)


async def follow_up(
    br: Broker, spec: TaskSpec, attempt: Attempt, *, retry_in: float | None, counts: bool
) -> None:
    """Write the task's next state after ``attempt`` ended (winner only)."""
    k, tid, a, now = br.keys, spec.id, attempt.number, br.clock()
    minute = int(now // 60)
    br.events.publish("attempt", id=tid, type=spec.type, queue=spec.queue, attempt=a,
                      outcome=attempt.outcome.value if attempt.outcome else None)
    if attempt.outcome in (Outcome.SUCCEEDED, Outcome.CANCELLED):
        await _terminal(br, spec, a, attempt.outcome.value, now, 0, minute)
        return
    raw = await br.store.get(k.cur(tid))
    free = decode_cur(raw)[3] if raw else 0
    if not counts:
        free += 1
    used = a - free
    b = Batch()
    token = None
    if counts:
        token = br.minutes.incr(b, k, minute, "failed")
        b.incr(k.count(spec.queue, "failed"))  # failed attempts, ever: a monotonic counter
    if counts and br.webhook.on_failure:
        await _notify(br, spec, "failed", a)
    if used > spec.max_retries:
        await _terminal(br, spec, a, "dead", now, free, minute, b, token)
        return
    delay = retry_in if retry_in is not None else spec.retry.delay(used)
    if delay <= 0:
        b.set(k.cur(tid), encode_cur(a + 1, "pending", now, free))
        await br.store.execute(b)
        br.minutes.armed(token)
        await push(br.store, k, {(spec.queue, spec.priority): [Ref(tid, a + 1)]})
        await br.announce()
        return
    b.set(k.cur(tid), encode_cur(a + 1, "retrying", now + delay, free))
    b.incr(k.count(spec.queue, "scheduled"))
    await br.store.execute(b)
    br.minutes.armed(token)
    late = await br.wheel.add([Entry("P", tid, a + 1, now + delay)])
    if late:
        await promote(br, late)


async def _terminal(
    br: Broker, spec: TaskSpec, a: int, state: str, now: float, free: int, minute: int,
    b: Batch | None = None, token: tuple[int, str] | None = None,
) -> None:
    """Record a terminal state; every key of the task now expires."""
    b = b or Batch()
    terminal_ops(br, spec, a, state, now, free, b)
    b.incr(br.keys.count(spec.queue, state))
    if state == "succeeded":
        token = br.minutes.incr(b, br.keys, minute, "processed")
    # Read the children after cur turned terminal, in the same round trip: a
    # child appending itself later reads that terminal cur (see workflow.py).
    kids_raw = (await br.store.execute(b.get(kids_key(br, spec.id))))[-1]
    br.minutes.armed(token)
    await terminal_done(br, spec, a, state, kids_raw)


def terminal_ops(br: Broker, spec: TaskSpec, a: int, state: str, now: float, free: int, b: Batch) -> None:
    """Add a terminal state's writes to ``b`` (not the counters, not the
    read of ``kids``, which the caller adds after them).

    Keys that already carry a TTL are left alone: ``prog`` (written with
    TTL R), ``hook`` (appended with TTL R; refreshed here only when a
    webhook is configured, so its records stay as long as the task) and a
    succeeded or cancelled attempt's own ``fin`` (written with TTL R +
    FIN_GRACE by ``Broker._finish``).
    """
    k, tid = br.keys, spec.id
    ttl_s = max(1, int(br.retention))
    b.set(k.cur(tid), encode_cur(a, state, now, free), px=ttl_s * 1000)
    last_fin = a if state == "dead" else a - 1  # succeeded / cancelled: fin:a has its TTL
    b.expire(k.spec(tid), ttl_s).expire(k.index(spec.seq), ttl_s)
    if spec.webhook is not None or br.webhook.url is not None:
        b.expire(k.hooks(tid), ttl_s)
    for n in range(1, last_fin + 1):
        b.expire(k.fin(tid, n), ttl_s)
    if spec.unique_key is not None:
        b.delete(k.unique(spec.unique_key))


async def terminal_done(br: Broker, spec: TaskSpec, a: int, state: str, kids_raw: bytes | None) -> None:
    """After the terminal writes: publish, deliver webhooks, resolve children."""
    br.events.publish("task", id=spec.id, type=spec.type, queue=spec.queue, status=state)
    if state in ("succeeded", "dead"):
        await _notify(br, spec, state, a)
    if kids_raw:
        # Only a parent has a kids list to expire (a child appending after
        # the read resolves its edge itself).
        await br.store.expire(kids_key(br, spec.id), max(1, int(br.retention)))
        await parent_ended(br, spec.id, state, kids_raw)


async def _notify(br: Broker, spec: TaskSpec, event: str, attempt: int) -> None:
    """Enqueue a webhook delivery for ``event``, if the task has a webhook."""
    url = spec.webhook or br.webhook.url
    if url is None or spec.type == WEBHOOK_TYPE:
        return
    from .engine import EnqueueRequest

    req = EnqueueRequest(
        WEBHOOK_TYPE, {"task": spec.id, "event": event, "url": url, "attempt": attempt},
        queue=WEBHOOK_QUEUE, max_retries=8, retry=RetryPolicy(base=2.0, cap=300.0),
        # a redone follow-up must not deliver twice while the first is live
        unique_key=f"webhook:{spec.id}:{attempt}:{event}",
    )
    await br.enqueue_many([req])


async def promote(br: Broker, entries: Sequence[Entry]) -> None:
    """Move due ``P`` entries into lanes, each attempt once (``mv`` marker)."""
    if not entries:
        return
    k, now = br.keys, br.clock()
    b = Batch()
    for e in entries:
        b.set(k.moved(e.task_id, e.attempt), b"1", nx=True, px=MARKER_MS)
        b.mget([k.spec(e.task_id), k.fin(e.task_id, e.attempt), k.cur(e.task_id)])
    answers = await br.store.execute(b)
    lanes: dict[tuple[str, int], list[Ref]] = {}
    after = Batch()
    for i, e in enumerate(entries):
        won, (spec_raw, fin_raw, cur_raw) = answers[2 * i], answers[2 * i + 1]
        if not won:
            continue
        if spec_raw is None:
            continue  # deleted meanwhile
        spec = decode_spec(spec_raw)
        after.incrby(k.count(spec.queue, "scheduled"), -1)
        if fin_raw is not None:
            continue  # cancelled while it waited
        cur = decode_cur(cur_raw) if cur_raw else (e.attempt, "", now, 0)
        if cur[0] == e.attempt:
            after.set(k.cur(spec.id), encode_cur(e.attempt, "pending", now, cur[3]), keepttl=True)
        lanes.setdefault((spec.queue, spec.priority), []).append(Ref(spec.id, e.attempt))
    if len(after):
        await br.store.execute(after)
    if lanes:
        await push(br.store, k, lanes)
        await br.announce()


async def reap(br: Broker, entries: Sequence[Entry]) -> int:
    """Handle due lease checks.

    - lease alive (renewed): check again at its new expiry;
    - lease gone, no outcome: the worker vanished: race for ``fin`` = lost;
    - outcome decided but ``cur`` still on that attempt for a while: its
      winner died before the follow-up: write the follow-up again.
    Returns how many attempts were declared lost.
    """
    if not entries:
        return 0
    k = br.keys
    b = Batch()
    for e in entries:
        b.pttl(k.lease(e.task_id, e.attempt)).mget([k.fin(e.task_id, e.attempt), k.cur(e.task_id)])
    answers = await br.store.execute(b)
    again, gone, redo = [], [], []
    now = br.clock()
    for i, e in enumerate(entries):
        pttl, (fin_raw, cur_raw) = answers[2 * i], answers[2 * i + 1]
        if fin_raw is not None:
            if cur_raw is None:
                continue
            a, state, _, _ = decode_cur(cur_raw)
            if a != e.attempt or state in ("succeeded", "dead", "cancelled"):
                continue  # the follow-up was written
            attempt, _ = decode_attempt(fin_raw)
            if now - (attempt.finished_at or now) >= FOLLOW_UP_CHECK / 2:
                redo.append((e, fin_raw))
            else:  # its winner may still be writing it
                again.append(attrs.evolve(e, due=now + FOLLOW_UP_CHECK))
        elif pttl >= 0:
            again.append(attrs.evolve(e, due=now + pttl / 1000 + 0.5))
        elif pttl == -2:
            gone.append(e)
    if again:
        await br.wheel.add(again)
    if redo:
        specs = await br.store.mget([k.spec(e.task_id) for e, _ in redo])
        for (e, fin_raw), raw in zip(redo, specs):
            if raw is not None:
                attempt, _ = decode_attempt(fin_raw)
                retry_in, counts = decode_follow_up(fin_raw)
                await follow_up(br, decode_spec(raw), attempt, retry_in=retry_in, counts=counts)
    lost = 0
    if gone:
        specs = await br.store.mget([k.spec(e.task_id) for e in gone])
        for e, raw in zip(gone, specs):
            if raw is None:
                continue
            attempt = Attempt(e.attempt, Outcome.LOST, e.extra or None, None, now, "LeaseExpired",
                              "the worker stopped heartbeating before the attempt finished")
            lost += await br._finish(decode_spec(raw), attempt, check_after=True)
    return lost


def expired_attempt(attempt: int, now: float) -> Attempt:
    return Attempt(attempt, Outcome.CANCELLED, None, None, now, "Expired",
                   "the task was not started before its deadline (expires_at)")


async def expire(br: Broker, entries: Sequence[Entry]) -> int:
    """Deadlines (``X`` entries): cancel each task whose first attempt has
    not started (no lease, no outcome). Returns how many were cancelled."""
    if not entries:
        return 0
    k = br.keys
    b = Batch()
    for e in entries:
        b.mget([k.lease(e.task_id, e.attempt), k.fin(e.task_id, e.attempt), k.spec(e.task_id)])
    n = 0
    for e, (lease, fin, spec_raw) in zip(entries, await br.store.execute(b)):
        if lease is None and fin is None and spec_raw is not None:
            n += await br._finish(decode_spec(spec_raw), expired_attempt(e.attempt, br.clock()),
                                  check_after=True)
    return n


async def cancel(br: Broker, task_id: str, reason: str = "cancelled on request") -> bool:
    """Cancel a scheduled, pending or running task. False if it already
    ended (or does not exist). A running attempt's worker learns of it at
    its next heartbeat and cancels the handler."""
    k = br.keys
    for _ in range(5):
        spec_raw, cur_raw = await br.store.mget([k.spec(task_id), k.cur(task_id)])
        if spec_raw is None or cur_raw is None:
            return False
        a, state, _, _ = decode_cur(cur_raw)
        if state in ("succeeded", "dead", "cancelled"):
            return False
        attempt = Attempt(a, Outcome.CANCELLED, None, None, br.clock(), "Cancelled", reason)
        if await br._finish(decode_spec(spec_raw), attempt, check_after=True):
            br.cancelled_locally(task_id, a)
            return True
        # attempt a was decided meanwhile (finished or retried): look again
    return False
