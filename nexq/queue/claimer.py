"""Claiming: hand each pending attempt to exactly one worker, then keep its lease.

Keys: lane ``head``/``tail`` and slots (read with one ``MGET``, taken with
``SET ~ XX GET``), ``paused:{q}``, ``lease:{id}:{a}`` (``SET NX PX``: one
runner; renewed by heartbeats with ``SET XX PX``), ``fin`` (read: decided
elsewhere), ``wheel`` (each lease's check), ``prog:{id}``. Claiming is
peek, lease, settle: a consumer that dies between any two steps loses
nothing (docs/design.md, "Claim").
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..codec import decode_cur, decode_spec, dumps, encode_ref
from ..store import Batch
from .context import NodeContext
from .lane_reader import LaneReader
from .lanes import PRIORITIES, TAKEN, TAKEN_TTL_MS, Pushed, Ref, read_lanes
from .malformed import decoded
from .outcomes import expired_attempt
from .requests import Claimed
from .wheel import Entry

if TYPE_CHECKING:
    from .node import NodeBroker

Settle = Callable[[], Awaitable[None]]
STALLED_WINDOW = 512  # slots peeked past holes when the head's window had nothing to claim


async def _settled() -> None:
    """Nothing to settle."""


def _free(cur_raw: bytes | None) -> int:
    """``free`` of a task's ``cur`` (earlier attempts not counted against its retries)."""
    try:
        return decode_cur(cur_raw)[3] if cur_raw else 0
    except ValueError:
        return 0  # malformed: only the shown attempt number suffers


class Claimer:
    """Claims on one node (a part of :class:`~nexq.queue.node.NodeBroker`)."""

    def __init__(self, ctx: NodeContext, node: NodeBroker, fair_every: int = 10,
                 hole_grace: float = 5.0) -> None:
        self.ctx, self.node = ctx, node
        self.fair_every = fair_every  # every Nth claim round visits low priority first
        self.hole_grace = hole_grace  # seconds a reserved, unwritten slot is waited for
        self._rng = random.Random()

    def reader(self) -> LaneReader:
        """Per-consumer claim state to pass to :meth:`claim`."""
        return LaneReader(self.ctx.store, self.ctx.keys, self.hole_grace)

    async def claim(self, queues: Sequence[str], capacity: int, worker: str, reader: LaneReader,
                    round_no: int = 0, weights: dict[str, float] | None = None) -> list[Claimed]:
        """Claim up to ``capacity`` attempts from ``queues`` for ``worker``.

        Strict priority (9 first) across the given queues, except every
        ``fair_every``-th round, which visits lanes lowest priority first so
        low priority still progresses under sustained high-priority load.
        """
        if capacity <= 0:
            return []
        paused, states = await read_lanes(self.ctx.store, self.ctx.keys, queues)
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
            # Past the slots this reader saw resolved or empty (its cursor),
            # with those empty ones read again: holes never stall a lane.
            start = reader.start(lane, st.head, st.tail)
            holes = len(reader.holes(lane, st.head))
            span = st.tail - start
            n = min(span, left)
            if n > 0 or holes:
                # Under contention, peek a wider window and lease a random
                # part of it, so competing consumers rarely race for the
                # same slots. Alone, a consumer takes strictly FIFO.
                # A round that found only holes and taken slots looks
                # further ahead at once.
                # So does a lane whose slots after the head are mostly
                # resolved (claimed from doorbell rings while a hole held
                # the head back) rather than waiting.
                wide = reader.stalled or span > 2 * max(st.pending, 1) + n
                window = (min(span, STALLED_WINDOW) if wide else
                          min(span, n * 4 + 8) if reader.contended else n)
                plan.append((lane, st.head, window))
                wants.append(min(left, n + holes))
                # Empty (reserved) and claimed slots after the head use no capacity.
                left -= min(n, max(st.pending, 1))
            if not left:
                break
        if not plan:
            return []
        slots = await reader.peek(plan)
        chosen = reader.choose(slots, wants)[:capacity]
        reader.stalled = not chosen and bool(slots)
        return await self._lease_and_settle(plan, slots, chosen, reader, worker)

    async def _lease_and_settle(
        self, plan: list[Any], slots: list[Any], waiting: list[Any], reader: LaneReader, worker: str
    ) -> list[Claimed]:
        """Lease each waiting attempt (``SET NX``: one runner), then in one
        pipeline schedule the lease checks and settle the slots."""
        now = self.ctx.clock()
        answers: list[Any] = []
        if waiting:
            b = Batch()
            for s in waiting:
                r = s.ref
                b.set(self.ctx.keys.lease(r.task_id, r.attempt), f"{worker}|{now:.3f}", nx=True, px=self.ctx.lease_ms)
                b.mget([self.ctx.keys.spec(r.task_id), self.ctx.keys.fin(r.task_id, r.attempt),
                        self.ctx.keys.cur(r.task_id)])
            answers = await self.ctx.store.execute(b)
        after = Batch()
        leased = []
        for i, s in enumerate(waiting):
            if answers[2 * i]:
                leased.append((s.key, s.ref, answers[2 * i + 1]))
            else:
                reader.lost_races += 1  # another consumer holds it; it settles the slot
        claimed, expired, resolved = self._runnable(leased, worker, now, after)
        reader.settle(plan, slots, resolved, after)
        reader.contended = reader.lost_races > 0
        reader.lost_races = 0
        if len(after):
            await self.ctx.store.execute(after)
        return await self._started(claimed, expired, worker, now)

    def _runnable(self, leased: list[tuple[str, Ref, Any]], worker: str, now: float,
                  after: Batch) -> tuple[list[Claimed], list[Claimed], set[str]]:
        """For attempts whose leases were just won (slot key, ref, their
        spec/fin/cur): which to run and which expired; every slot among
        them is resolved. Adds to ``after`` the lease checks of those to
        run (first: if we die inside that pipeline, either the slots still
        hold their refs or the checks are scheduled) and the release of
        leases on attempts already decided or deleted."""
        claimed: list[Claimed] = []
        expired: list[Claimed] = []
        resolved: set[str] = set()
        for key, r, (spec_raw, fin_raw, cur_raw) in leased:
            resolved.add(key)
            spec = None if spec_raw is None else decoded(decode_spec, spec_raw, self.ctx.keys.spec(r.task_id))
            if spec is None or fin_raw is not None:
                # deleted, malformed or already decided
                after.delete(self.ctx.keys.lease(r.task_id, r.attempt))
                continue
            if spec.expires_at is not None and now >= spec.expires_at and r.attempt == 1:
                expired.append(Claimed(spec, r.attempt, worker, now, self.ctx.index))
                continue
            claimed.append(Claimed(spec, r.attempt, worker, now, self.ctx.index, _free(cur_raw)))
        due = now + self.ctx.lease_ms / 1000 + 0.5
        self.ctx.wheel.add_ops(after, [Entry("L", c.spec.id, c.attempt, due, worker) for c in claimed])
        return claimed, expired, resolved

    async def _started(self, claimed: list[Claimed], expired: list[Claimed], worker: str,
                       now: float) -> list[Claimed]:
        """Decide the expired attempts, announce the claimed ones; returns those."""
        for c in expired:
            await self.node.outcomes.decide(c.spec, expired_attempt(c.attempt, now), lease_held=True)
        if claimed:
            await self.ctx.hooks.after_claim(self.node, [c.spec for c in claimed],
                                             [c.attempt for c in claimed], worker)
        return claimed

    async def claim_pushed(self, hints: Sequence[Pushed], capacity: int,
                           worker: str) -> tuple[list[Claimed], Settle]:
        """Claim attempts a doorbell named (:class:`~.lanes.Pushed`) without
        reading the lanes: per hint, in one round trip, ``SET lease NX`` and
        the reads of spec, fin, cur, the queue's pause and the slot. A hint
        is used only when its slot still holds its ref and the queue is not
        paused (else the lease is given back): so each ref is resolved, and
        counted, by one lease winner, as in a claim round. For an idle
        worker: it skips the lanes' order (priority, fairness), which only
        matters with a backlog.

        Returns the attempts to run at once, and their settle (the lease
        checks, the slots, the counts, as :meth:`claim`'s pipeline), which
        the caller awaits while they run, and before it records any of
        their outcomes: an outcome deletes the lease, and only a settled
        slot keeps a later lease winner from resolving the ref again. A
        crash before the settle lands leaves the ref in its slot: the
        attempt runs again once its lease expires (as for a crash while
        it runs)."""
        hints = list(hints)[:capacity]
        if not hints:
            return [], _settled
        keys, now = self.ctx.keys, self.ctx.clock()
        b = Batch()
        for h in hints:
            b.set(keys.lease(h.task_id, h.attempt), f"{worker}|{now:.3f}", nx=True, px=self.ctx.lease_ms)
            b.mget([keys.spec(h.task_id), keys.fin(h.task_id, h.attempt), keys.cur(h.task_id),
                    keys.paused(h.queue), keys.lane_slot(h.queue, h.priority, h.slot),
                    keys.lane_head(h.queue, h.priority)])
        answers = await self.ctx.store.execute(b)
        leased, after = [], Batch()
        heads: dict[tuple[str, int], int] = {}
        for i, h in enumerate(hints):
            won, (spec_raw, fin_raw, cur_raw, paused, slot, head) = answers[2 * i], answers[2 * i + 1]
            heads[(h.queue, h.priority)] = int(head or 0)
            if not won:
                continue  # another worker won it
            if paused is not None or slot != encode_ref(h.task_id, h.attempt):
                after.delete(keys.lease(h.task_id, h.attempt))  # paused, or not where the hint said
                continue
            leased.append((h, (spec_raw, fin_raw, cur_raw)))
        claimed, expired, resolved = self._runnable(
            [(keys.lane_slot(h.queue, h.priority, h.slot), Ref(h.task_id, h.attempt), raw)
             for h, raw in leased], worker, now, after)
        done: dict[tuple[str, int], set[int]] = {}
        for h, _ in leased:
            key = keys.lane_slot(h.queue, h.priority, h.slot)
            if key in resolved:
                after.set(key, TAKEN, xx=True, px=TAKEN_TTL_MS)
                after.incrby(keys.lane_resolved(h.queue, h.priority), 1)
                done.setdefault((h.queue, h.priority), set()).add(h.slot)
        for lane, slots in done.items():
            # The head moves past the slots resolved here that follow it
            # without a gap, as a claim round's would (each slot up to it
            # is resolved): else it stays behind every task claimed from a
            # ring, and the next claim round reads all of their slots.
            head = heads[lane]
            while head + 1 in slots:
                head += 1
            if head > heads[lane]:
                after.set(keys.lane_head(*lane), head)
        await self._started(claimed, [], worker, now)

        async def settle() -> None:
            if len(after):
                await self.ctx.store.execute(after)
            await self._started([], expired, worker, now)

        return claimed, settle

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
            b.set(self.ctx.keys.lease(c.spec.id, c.attempt), f"{c.worker}|{c.started_at:.3f}", xx=True, px=self.ctx.lease_ms)
            b.exists(self.ctx.keys.fin(c.spec.id, c.attempt))
        answers = await self.ctx.store.execute(b)
        return [(bool(answers[2 * i]), bool(answers[2 * i + 1])) for i in range(len(running))]

    async def progress(self, c: Claimed, fraction: float | None, message: str | None) -> None:
        data = dumps({"fraction": fraction, "message": message, "at": self.ctx.clock()})
        await self.ctx.store.set(self.ctx.keys.progress(c.spec.id), data, px=int(self.ctx.retention * 1000))
