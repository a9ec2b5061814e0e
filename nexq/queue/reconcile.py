"""Reconciliation: repair tasks whose keys disagree after the store lost writes.

Pogocache's snapshot is not point-in-time: a restart (clean or not) can drop
any subset of the writes made since the last ``SAVE``, and a full cache
evicts keys. No ordering argument survives that ("the lease check was
written first, so..."), so instead of preventing every inconsistency the
queue repairs them: a reconciliation round walks the listing index (no
KEYS or SCAN), reads each live task's facts, and moves every task whose
facts disagree to a state from which it completes.

A live task (``cur`` not terminal) on attempt ``a``, with no outcome
``fin:{id}:{a}`` and no lease, older than ``grace`` seconds:

==========================  ==============================================
what the keys say            repair
==========================  ==========================================
pending, no lane slot holds  the attempt is decided ``lost`` (not counted
``id|a``                     against the retries: the store lost it, not
                             the task) and the next attempt is pushed
scheduled / retrying, due    pushed into its lane now (the wheel entry or
passed, not in its lane      the move was lost)
waiting, every parent ended  its edges resolved again; released, or
                             cancelled by a failed parent's policy
outcome decided, ``cur``     the follow-up is written again (its lease
never followed               check was lost)
``spec`` present, ``cur``    ``cur`` rebuilt from the outcomes present
lost
``cur`` present, ``spec``    the task cannot run: its leftovers are deleted
lost                         and it is counted as lost by the store
==========================  ==========================================

Lanes whose ``head`` passed their ``tail`` (the tail's write was lost) get
their tail moved up, and a queue missing from ``queues`` is registered
again. Every repair is safe to run twice or by several schedulers at once:
decisions race on ``fin`` (``SET NX``), a duplicate lane ref for one attempt
is harmless (its second claim fails the lease's ``SET NX`` or sees the
outcome), and pushes are guarded by a marker. Candidates are read again,
after the lanes were read, before anything is repaired, so an attempt a
worker claims meanwhile (it leases before its slot is marked taken) is
left alone.

Cost: one round reads at most ``budget`` index entries and, only for lanes
holding a candidate, the lane's unresolved slots (skipped above
``lane_limit`` slots: a backlog that large is checked once it drains).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ..codec import decode_attempt, decode_cur, decode_follow_up, decode_ref, decode_spec, encode_cur
from ..keys import MARKER_MS, TERMINAL_STATES, State
from ..store import Batch
from ..task import Attempt, Outcome, TaskSpec
from .index_top import CHUNK, IndexTop
from .lanes import TAKEN, Ref, push, read_lanes
from .malformed import decoded, skipped
from .orphans import ended, recheck_later, take_rechecks
from .outcomes import FOLLOW_UP_CHECK
from .wheel import Entry
from .workflow import release, resolve_edge

if TYPE_CHECKING:
    from .node import NodeBroker

MAX_PROBED_ATTEMPTS = 50  # outcomes read back when a task's cur was lost


@attrs.define
class Report:
    """What one round found and repaired (all zero on a healthy store)."""

    checked: int = 0  # live tasks looked at
    lost_attempts: int = 0  # pending attempts no lane held: decided lost, next one pushed
    repromoted: int = 0  # due attempts pushed into their lane
    followed_up: int = 0  # outcomes whose follow-up was written again
    released: int = 0  # waiting tasks whose parents had all ended
    rebuilt: int = 0  # tasks whose cur was lost and rebuilt
    lost_tasks: int = 0  # tasks whose spec was lost: cannot run
    lanes_fixed: int = 0  # lanes whose tail was behind their head
    counters_fixed: int = 0  # times seq had fallen behind index entries in use
    queues_registered: int = 0  # queues missing from the queue list
    adopted: int = 0  # live orphans a lookup by id put back in the index, checked here

    def add(self, other: Report) -> None:
        """Add ``other``'s counts to these."""
        for field in attrs.fields(Report):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    @property
    def repairs(self) -> int:
        return (self.lost_attempts + self.repromoted + self.followed_up + self.released + self.rebuilt
                + self.lost_tasks + self.lanes_fixed + self.counters_fixed + self.queues_registered)


@attrs.frozen
class _Live:
    spec: TaskSpec
    attempt: int
    state: str
    at: float  # when it became pending / waiting, or when it is due


class Reconciler:
    """Reconciliation rounds over one node (see the module doc)."""

    def __init__(self, node: NodeBroker, *, grace: float = 10.0, budget: int = 5_000,
                 lane_limit: int = 20_000) -> None:
        self.node, self.ctx = node, node.ctx
        self.grace, self.budget, self.lane_limit = grace, budget, lane_limit
        self._index = IndexTop(node.ctx)

    async def run(self, full: bool = False, turn_ms: int | None = None) -> Report:
        """One round: ``full`` walks the whole live index, else the next
        ``budget`` entries (rounds rotate through the index, the position
        shared by every process). With ``turn_ms``, a partial round runs only
        if this process takes the turn (``SET NX PX turn_ms``): one partial
        round per interval for the whole deployment, however many run it."""
        report = Report()
        k, store = self.ctx.keys, self.ctx.store
        if not full and turn_ms and not await store.set(k.reconcile_turn, b"1", nx=True, px=turn_ms):
            return report
        settled = self._index.settled()
        top, fixed = await self._index.read()
        report.counters_fixed += fixed
        if top <= 0:
            return report
        lo_raw, pos_raw = await store.mget([k.reconcile_low, k.reconcile_pos])
        lo, pos = int(lo_raw or 1), int(pos_raw or 0)
        start = lo if full or not lo <= pos <= top else pos
        end = top if full else min(top, start + self.budget - 1)
        if not full:
            await store.set(k.reconcile_pos, end + 1 if end < top else lo)
        live, dense_from = await self._read_live(start, end, report)
        dense_from = min(dense_from, settled + 1)  # a hole above may be a producer's reserved position
        if start == lo and dense_from > lo:
            await store.set(k.reconcile_low, dense_from)  # a hint: entries below are gone for good
        young = await self._add_rechecks(live, report)
        await self._repair(live, report)
        await recheck_later(self.ctx, young)
        return report

    async def _add_rechecks(self, live: list[_Live], report: Report) -> list[str]:
        """Add the adopted orphans on the recheck list to ``live``; returns
        the ids too young to repair yet (they go back on the list)."""
        ids = await take_rechecks(self.ctx)
        if not ids:
            return []
        extra = await self._live_of(ids, report)
        report.adopted += len(ids)
        report.checked += len(extra)
        known = {t.spec.id for t in live}
        live += [t for t in extra if t.spec.id not in known]
        now = self.ctx.clock()
        return [t.spec.id for t in extra if now - t.at < self.grace]

    # -- reading ------------------------------------------------------------------

    async def _read_live(self, start: int, end: int, report: Report) -> tuple[list[_Live], int]:
        """The live tasks indexed in [start, end]; and the first position from
        which entries still exist (a low-water mark)."""
        k, store = self.ctx.keys, self.ctx.store
        live: list[_Live] = []
        dense_from = start
        leading = True
        for lo in range(start, end + 1, CHUNK):
            hi = min(end, lo + CHUNK - 1)
            ids_raw = await store.mget([k.index(n) for n in range(lo, hi + 1)])
            ids: list[str] = []
            for n, raw in zip(range(lo, hi + 1), ids_raw):
                if raw is None:
                    if leading:
                        dense_from = n + 1
                    continue
                leading = False
                ids.append(raw.decode())
            if ids:
                live += await self._live_of(ids, report)
        report.checked += len(live)
        return live, dense_from

    async def _live_of(self, ids: Sequence[str], report: Report) -> list[_Live]:
        """The live ones among ``ids`` (cur not terminal); a lost ``cur`` or
        ``spec`` is repaired on the way (counted in ``report``)."""
        k, store = self.ctx.keys, self.ctx.store
        # cur first: a finished task (most of the index) needs no more reads.
        curs = await store.mget([k.cur(tid) for tid in ids])
        open_ = [(tid, cur) for tid, cur in zip(ids, curs) if cur is None or not ended(cur)]
        specs = await store.mget([k.spec(tid) for tid, _ in open_]) if open_ else []
        live: list[_Live] = []
        for (tid, cur_raw), spec_raw in zip(open_, specs):
            try:
                live += await self._classify(tid, spec_raw, cur_raw, report)
            except ValueError as exc:  # a value this version cannot read: leave the task be
                skipped(k.spec(tid), spec_raw or cur_raw or b"", exc)
        return live

    async def _classify(self, tid: str, spec_raw: bytes | None, cur_raw: bytes | None,
                        report: Report) -> list[_Live]:
        if spec_raw is None:
            if cur_raw is not None and decode_cur(cur_raw)[1] not in TERMINAL_STATES:
                await self._drop_specless(tid, report)
            return []
        spec = decode_spec(spec_raw)
        if cur_raw is None:
            await self._rebuild_cur(spec, report)
            return []
        a, state, at, _ = decode_cur(cur_raw)
        return [] if state in TERMINAL_STATES else [_Live(spec, a, state, at)]

    # -- repairing ----------------------------------------------------------------

    async def _repair(self, live: list[_Live], report: Report) -> None:
        now = self.ctx.clock()
        old = [t for t in live if now - t.at >= self.grace]
        if not old:
            return
        await self._register_queues({t.spec.queue for t in old}, report)
        facts = await self._facts(old)
        suspects = [t for t, (lease, fin) in zip(old, facts) if lease is None and fin is None]
        decided = [(t, f) for t, (_, f) in zip(old, facts) if f is not None]
        for t, fin_raw in decided:
            await self._follow_up(t, fin_raw, now, report)
        in_lane = await self._lane_refs({(t.spec.queue, t.spec.priority) for t in suspects
                                        if t.state != State.WAITING}, report)
        # Read again after the lanes: an attempt claimed meanwhile now has a lease.
        again = await self._facts(suspects)
        curs = await self.ctx.store.mget([self.ctx.keys.cur(t.spec.id) for t in suspects]) if suspects else []
        for t, (lease, fin), cur_raw in zip(suspects, again, curs):
            if lease is not None or fin is not None or cur_raw is None:
                continue
            a, state, _, _ = decode_cur(cur_raw)
            if a != t.attempt or state != t.state:
                continue  # it moved on by itself
            lane = (t.spec.queue, t.spec.priority)
            if state == State.WAITING:
                await self._unblock(t, report)
            elif lane not in in_lane or Ref(t.spec.id, a) in in_lane[lane]:
                continue  # its lane is too long to check now, or it is there, waiting its turn
            elif state == State.PENDING:
                report.lost_attempts += await self._lose(t)
            else:
                report.repromoted += await self._repromote(t)

    async def _facts(self, tasks: Sequence[_Live]) -> list[tuple[bytes | None, bytes | None]]:
        """(lease, fin) of each task's current attempt."""
        if not tasks:
            return []
        k = self.ctx.keys
        b = Batch()
        for t in tasks:
            b.mget([k.lease(t.spec.id, t.attempt), k.fin(t.spec.id, t.attempt)])
        return [(v[0], v[1]) for v in await self.ctx.store.execute(b)]

    async def _lane_refs(self, lanes: set[tuple[str, int]], report: Report) -> dict[tuple[str, int], set[Ref]]:
        """The refs each lane's unresolved slots hold; a lane longer than
        ``lane_limit`` is left out (unknown). Fixes a tail behind its head."""
        if not lanes:
            return {}
        k, store = self.ctx.keys, self.ctx.store
        queues = sorted({q for q, _ in lanes})
        _, states = await read_lanes(store, k, queues)
        out: dict[tuple[str, int], set[Ref]] = {}
        for q, p in sorted(lanes):
            st = states[(q, p)]
            if st.head > st.tail:
                await store.incrby(k.lane_tail(q, p), st.head - st.tail)
                report.lanes_fixed += 1
                st.tail = st.head
            if st.tail - st.head > self.lane_limit:
                continue
            refs: set[Ref] = set()
            for lo in range(st.head + 1, st.tail + 1, CHUNK):
                hi = min(st.tail, lo + CHUNK - 1)
                for n, raw in zip(range(lo, hi + 1),
                                  await store.mget([k.lane_slot(q, p, n) for n in range(lo, hi + 1)])):
                    if raw is not None and raw != TAKEN:
                        ref = decoded(decode_ref, raw, k.lane_slot(q, p, n))
                        if ref is not None:
                            refs.add(Ref(*ref))
            out[(q, p)] = refs
        return out

    async def _lose(self, t: _Live) -> int:
        """Decide a pending attempt no lane holds: lost, not counted; its
        follow-up pushes the next attempt at once."""
        attempt = Attempt(t.attempt, Outcome.LOST, None, None, self.ctx.clock(), "Reconciled",
                          "the store lost this attempt's lane slot or lease (a restart or eviction)")
        won = await self.node.outcomes.decide(t.spec, attempt, retry_in=0.0, counts=False, check_after=True)
        return int(won)

    async def _repromote(self, t: _Live) -> int:
        """Push a due attempt whose wheel entry or move was lost (once per
        round of repairs: a marker guards against several schedulers)."""
        k, store = self.ctx.keys, self.ctx.store
        if not await store.set(k.repaired(t.spec.id, t.attempt), b"1", nx=True, px=MARKER_MS):
            return 0
        b = Batch().set(k.cur(t.spec.id), encode_cur(t.attempt, State.PENDING, self.ctx.clock()), keepttl=True)
        b.incrby(k.count(t.spec.queue, State.SCHEDULED), -1)
        await store.execute(b)
        await push(store, k, {(t.spec.queue, t.spec.priority): [Ref(t.spec.id, t.attempt)]})
        await self.ctx.hooks.after_push(self.node)
        return 1

    async def _follow_up(self, t: _Live, fin: bytes, now: float, report: Report) -> None:
        """An outcome whose follow-up never came (its lease check was lost)."""
        attempt, _ = decode_attempt(fin)
        if now - (attempt.finished_at or now) < FOLLOW_UP_CHECK:
            return  # its winner may still be writing it; the lease check covers it
        retry_in, counts, final = decode_follow_up(fin)
        await self.node.outcomes.follow_up(t.spec, attempt, retry_in=retry_in, counts=counts, final=final)
        report.followed_up += 1

    async def _unblock(self, t: _Live, report: Report) -> None:
        """A waiting task: resolve the edges to parents that ended (or
        expired, which only an ended task does); release it if they all did."""
        k = self.ctx.keys
        parents = list(t.spec.depends_on)
        curs = await self.ctx.store.mget([k.cur(p) for p in parents])
        states = [decode_cur(c)[1] if c is not None else State.SUCCEEDED.value for c in curs]
        if any(s not in TERMINAL_STATES for s in states):
            return
        for p, s in zip(parents, states):
            await resolve_edge(self.node, t.spec.id, p, s)
        cur_raw = await self.ctx.store.get(k.cur(t.spec.id))
        if cur_raw is not None and decode_cur(cur_raw)[1] == State.WAITING:
            # Its edges were resolved before (markers say so) but what
            # followed was lost: decide it from the parents' ends.
            if any(s != State.SUCCEEDED for s in states) and t.spec.on_parent_failure == "cancel":
                await self.node.cancel(t.spec.id, reason="a parent task ended without succeeding")
            else:
                await release(self.node, t.spec, force=True)
        report.released += 1

    async def _rebuild_cur(self, spec: TaskSpec, report: Report) -> None:
        """``cur`` was lost: rebuild it from the outcomes that survived."""
        k, store = self.ctx.keys, self.ctx.store
        n = min(MAX_PROBED_ATTEMPTS, spec.max_retries + 10)
        fins = await store.mget([k.fin(spec.id, a) for a in range(1, n + 1)])
        last = max((a for a, f in enumerate(fins, start=1) if f is not None), default=0)
        report.rebuilt += 1
        if last:
            attempt, _ = decode_attempt(fins[last - 1] or b"")
            retry_in, counts, final = decode_follow_up(fins[last - 1] or b"")
            await self.node.outcomes.follow_up(spec, attempt, retry_in=retry_in, counts=counts, final=final)
            return
        if spec.depends_on:
            await store.set(k.cur(spec.id), encode_cur(1, State.WAITING, spec.created_at), nx=True)
            return
        now = self.ctx.clock()
        if spec.run_at is not None and spec.run_at > now:  # never early: back on the wheel
            if await store.set(k.cur(spec.id), encode_cur(1, State.SCHEDULED, spec.run_at), nx=True):
                late = await self.ctx.wheel.add([Entry("P", spec.id, 1, spec.run_at)])
                if late:
                    await self.node.promote(late)
        elif await store.set(k.cur(spec.id), encode_cur(1, State.PENDING, now), nx=True):
            await push(store, k, {(spec.queue, spec.priority): [Ref(spec.id, 1)]})
            await self.ctx.hooks.after_push(self.node)

    async def _drop_specless(self, tid: str, report: Report) -> None:
        """A live ``cur`` whose spec the store lost: nothing can run it."""
        await self.ctx.store.delete(self.ctx.keys.cur(tid))
        report.lost_tasks += 1

    async def _register_queues(self, queues: set[str], report: Report) -> None:
        k, store = self.ctx.keys, self.ctx.store
        raw = await store.get(k.queues) or b""
        known = {q for q in raw.decode().split(",") if q}
        for q in sorted(queues - known):
            await store.append(k.queues, f"{q},")
            report.queues_registered += 1
