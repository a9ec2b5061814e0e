"""Due entries of the time wheel: promote, reap and expire.

Each wheel entry names an attempt and what to do when it comes due:

- ``P`` (promote): move a scheduled or retrying attempt into its lane, once
  (``SET mv:{id}:{a} NX`` decides who moves it);
- ``L`` (lease check): if the attempt's lease was renewed, check again at
  its new expiry; if it is gone with no outcome, declare the attempt
  ``lost`` (racing for ``fin`` like any outcome); if an outcome exists but
  ``cur`` never followed it, redo the dead winner's follow-up;
- ``X`` (deadline): cancel a task whose first attempt has not started.

Schedulers claim ended buckets with ``INCR wheel:cursor`` (see wheel.py),
so any number of them share the work without a leader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from ..codec import (
    decode_attempt,
    decode_cur,
    decode_follow_up,
    decode_spec,
    encode_cur,
)
from ..keys import MARKER_MS, TERMINAL_STATES, State
from ..store import Batch
from ..task import Attempt, Outcome
from .context import NodeContext
from .lanes import Ref, push
from .malformed import decoded
from .outcomes import FOLLOW_UP_CHECK, expired_attempt
from .wheel import Entry

if TYPE_CHECKING:
    from .node import NodeBroker


class Due:
    """The wheel's handlers on one node (a part of :class:`~nexq.queue.node.NodeBroker`)."""

    def __init__(self, ctx: NodeContext, node: NodeBroker) -> None:
        self.ctx, self.node = ctx, node

    async def run_due(self) -> int:
        """One scheduler step: claim ended wheel buckets (waiting for any
        claimed ahead of time), promote due attempts, reap expired leases.
        Returns the number of buckets handled."""
        wheel = self.ctx.wheel
        buckets = await wheel.claim_ended()
        for bucket in buckets:
            wait = wheel.bucket_end(bucket) - self.ctx.clock()
            if wait > 0:
                await trio.sleep(wait)
        if buckets:
            await self.handle(await wheel.read(buckets))
            await wheel.drop(buckets)
        return len(buckets)

    async def sweep(self, older_than: float = 5.0) -> int:
        """Repair buckets a dead scheduler claimed but never finished."""
        wheel = self.ctx.wheel
        buckets = await wheel.leftovers(older_than)
        if buckets:
            await self.handle(await wheel.read(buckets))
            await wheel.drop(buckets)
        return len(buckets)

    async def handle(self, entries: Sequence[Entry]) -> None:
        """Act on due entries of every kind."""
        await self.promote([e for e in entries if e.kind == "P"])
        await self.reap([e for e in entries if e.kind == "L"])
        await self.expire([e for e in entries if e.kind == "X"])

    async def promote(self, entries: Sequence[Entry]) -> None:
        """Move due ``P`` entries into lanes, each attempt once (``mv`` marker)."""
        if not entries:
            return
        k, now, store = self.ctx.keys, self.ctx.clock(), self.ctx.store
        b = Batch()
        for e in entries:
            b.set(k.moved(e.task_id, e.attempt), b"1", nx=True, px=MARKER_MS)
            b.mget([k.spec(e.task_id), k.fin(e.task_id, e.attempt), k.cur(e.task_id)])
        answers = await store.execute(b)
        lanes: dict[tuple[str, int], list[Ref]] = {}
        after = Batch()
        for i, e in enumerate(entries):
            won, (spec_raw, fin_raw, cur_raw) = answers[2 * i], answers[2 * i + 1]
            spec = None if spec_raw is None else decoded(decode_spec, spec_raw, k.spec(e.task_id))
            if not won or spec is None:
                continue  # moved by another, deleted meanwhile, or malformed
            after.incrby(k.count(spec.queue, State.SCHEDULED), -1)
            if fin_raw is not None:
                continue  # cancelled while it waited
            cur = (decoded(decode_cur, cur_raw, k.cur(spec.id)) if cur_raw else None) or (e.attempt, "", now, 0)
            if cur[0] == e.attempt:
                after.set(k.cur(spec.id), encode_cur(e.attempt, State.PENDING, now, cur[3]), keepttl=True)
            lanes.setdefault((spec.queue, spec.priority), []).append(Ref(spec.id, e.attempt))
        if len(after):
            await store.execute(after)
        if lanes:
            await push(store, k, lanes)
            await self.ctx.hooks.after_push(self.node)

    async def reap(self, entries: Sequence[Entry]) -> int:
        """Handle due lease checks (see the module doc). Returns how many
        attempts were declared lost."""
        if not entries:
            return 0
        k, store, outcomes = self.ctx.keys, self.ctx.store, self.node.outcomes
        b = Batch()
        for e in entries:
            b.pttl(k.lease(e.task_id, e.attempt)).mget([k.fin(e.task_id, e.attempt), k.cur(e.task_id)])
        answers = await store.execute(b)
        again, gone, redo = [], [], []
        now = self.ctx.clock()
        for i, e in enumerate(entries):
            pttl, (fin_raw, cur_raw) = answers[2 * i], answers[2 * i + 1]
            if fin_raw is not None:
                cur = None if cur_raw is None else decoded(decode_cur, cur_raw, k.cur(e.task_id))
                fin = decoded(decode_attempt, fin_raw, k.fin(e.task_id, e.attempt))
                if cur is None or fin is None:
                    continue  # gone, or malformed: nothing to redo from
                if cur[0] != e.attempt or cur[1] in TERMINAL_STATES:
                    continue  # the follow-up was written
                attempt = fin[0]
                if now - (attempt.finished_at or now) >= FOLLOW_UP_CHECK / 2:
                    redo.append((e, fin_raw))
                else:  # its winner may still be writing it
                    again.append(attrs.evolve(e, due=now + FOLLOW_UP_CHECK))
            elif pttl >= 0:
                again.append(attrs.evolve(e, due=now + pttl / 1000 + 0.5))
            elif pttl == -2 and _on_attempt(cur_raw, e.attempt):
                # Only while cur is still on this attempt: a store that lost
                # a finished attempt's outcome must not have it declared lost
                # over the state that followed (reconciliation handles a lost cur).
                gone.append(e)
        if again:
            await self.ctx.wheel.add(again)
        if redo:
            specs = await store.mget([k.spec(e.task_id) for e, _ in redo])
            for (e, fin_raw), raw in zip(redo, specs):
                spec = None if raw is None else decoded(decode_spec, raw, k.spec(e.task_id))
                if spec is not None:
                    attempt, _ = decode_attempt(fin_raw)
                    retry_in, counts, final = decode_follow_up(fin_raw)
                    await outcomes.follow_up(spec, attempt, retry_in=retry_in, counts=counts, final=final)
        lost = 0
        if gone:
            specs = await store.mget([k.spec(e.task_id) for e in gone])
            for e, raw in zip(gone, specs):
                spec = None if raw is None else decoded(decode_spec, raw, k.spec(e.task_id))
                if spec is None:
                    continue
                attempt = Attempt(e.attempt, Outcome.LOST, e.extra or None, None, now, "LeaseExpired",
                                  "the worker stopped heartbeating before the attempt finished")
                lost += await outcomes.decide(spec, attempt, check_after=True)
        return lost

    async def expire(self, entries: Sequence[Entry]) -> int:
        """Deadlines (``X`` entries): cancel each task whose first attempt has
        not started (no lease, no outcome). Returns how many were cancelled."""
        if not entries:
            return 0
        k = self.ctx.keys
        b = Batch()
        for e in entries:
            b.mget([k.lease(e.task_id, e.attempt), k.fin(e.task_id, e.attempt), k.spec(e.task_id)])
        n = 0
        for e, (lease, fin, spec_raw) in zip(entries, await self.ctx.store.execute(b)):
            spec = None if spec_raw is None else decoded(decode_spec, spec_raw, k.spec(e.task_id))
            if lease is None and fin is None and spec is not None:
                n += await self.node.outcomes.decide(spec, expired_attempt(e.attempt, self.ctx.clock()),
                                                     check_after=True)
        return n


def _on_attempt(cur_raw: bytes | None, attempt: int) -> bool:
    """Whether ``cur`` names ``attempt`` in a live state."""
    if cur_raw is None:
        return False
    a, state, _, _ = decode_cur(cur_raw)
    return a == attempt and state not in TERMINAL_STATES
