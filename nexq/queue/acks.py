"""Group commit of acks: attempts that succeed together share round trips.

A worker's handlers often finish in the same scheduler tick (a claim round
starts them together). Recording each success alone costs two round trips
and two batches of Python work per task; here the first ack of a tick
becomes the group's leader, lets the scheduler run once so the others can
join, and records the whole group in the same two round trips as one:

1. ``SET fin:{id}:{a} NX PX`` + ``DEL lease`` for every attempt (each
   ``fin`` is still its own single-key decision: losers are dropped);
2. for the winners, every terminal write (``terminal_ops``), then one
   ``INCRBY`` per counter for the group, then one ``MGET`` of the winners'
   ``kids`` lists (after their terminal ``cur``, as workflow.py needs).

The protocol is the single-task one (docs/design.md, "Outcomes"), so the
crash analysis is unchanged: dying between 1 and 2 leaves decided outcomes
whose ``cur`` has not followed, which the lease check repairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ..codec import encode_attempt
from ..errors import ResultNotSerializable, StoreError
from ..keys import State
from ..store import Batch
from ..task import Attempt, TaskSpec
from .context import FIN_GRACE

if TYPE_CHECKING:
    from .outcomes import Outcomes


MAX_GROUP = 256  # a leader stops waiting for joiners at this size
IDLE_PASSES = 2  # ... or after this many scheduler passes without one


class _Ack:
    __slots__ = ("attempt", "done", "error", "free", "record", "spec", "won")

    def __init__(self, spec: TaskSpec, attempt: Attempt, record: bytes, free: int) -> None:
        self.spec, self.attempt, self.record, self.free = spec, attempt, record, free
        self.won = False
        self.error: BaseException | None = None
        self.done = trio.Event()


class AckGroup:
    """Shares the round trips of concurrent successful acks (see module doc)."""

    def __init__(self, outcomes: Outcomes) -> None:
        self._outcomes = outcomes
        self._joining: list[_Ack] = []

    async def ack(self, spec: TaskSpec, attempt: Attempt, result: Any, free: int = 0) -> bool:
        """Record a succeeded attempt (``free``: the task's earlier attempts
        not counted against its retries, kept in its terminal ``cur``); False
        if its outcome was decided elsewhere. Raises what recording the group
        raised (StoreUnavailable)."""
        # Encoded here: a result JSON cannot carry fails this ack alone.
        me = _Ack(spec, attempt, encode_result(attempt, result), free)
        self._joining.append(me)
        if len(self._joining) > 1:
            await me.done.wait()  # the leader records it
            if me.error is not None:
                raise me.error
            return me.won
        # Leader: scheduler passes let the handlers finishing now join, for
        # as long as the group keeps growing (a few passes, microseconds).
        size, idle = 0, 0
        while idle < IDLE_PASSES and size < MAX_GROUP:
            idle = 0 if len(self._joining) > size else idle + 1
            size = len(self._joining)
            await trio.lowlevel.cancel_shielded_checkpoint()
        group, self._joining = self._joining, []
        try:
            # Shielded: followers depend on it (the store's command timeout bounds it).
            with trio.CancelScope(shield=True):
                await record(self._outcomes, group)
        except BaseException as exc:
            for w in group[1:]:
                w.error = type(exc)(str(exc)) if isinstance(exc, StoreError) else exc
            raise
        finally:
            for w in group:
                w.done.set()
        return me.won


def encode_result(attempt: Attempt, result: Any) -> bytes:
    """The outcome record of a succeeded attempt; raises ResultNotSerializable
    (naming the offending type) if JSON cannot carry ``result``."""
    try:
        return encode_attempt(attempt, result)
    except TypeError as exc:
        text = str(exc)  # orjson: "Type is not JSON serializable: bytes", "Dict key must be str"
        head, _, name = text.rpartition(": ")
        what = f"{name} is not JSON" if head.endswith("not JSON serializable") else f"the result is not JSON: {text}"
        raise ResultNotSerializable(
            f"{what}; a handler must return JSON values (dict with str keys, list, str, int, float, bool, None)"
        ) from None


async def record(outcomes: Outcomes, group: list[_Ack]) -> None:
    """Decide and follow up every attempt of ``group`` (sets ``won``)."""
    ctx = outcomes.ctx
    k, store = ctx.keys, ctx.store
    px = int(ctx.retention + FIN_GRACE) * 1000
    b = Batch(durable=True)  # --store-replicas: the decisions survive a failover
    for w in group:
        tid, a = w.spec.id, w.attempt.number
        b.set(k.fin(tid, a), w.record, nx=True, px=px)
        b.delete(k.lease(tid, a))
    decided = await store.execute(b)
    now = ctx.clock()
    winners: list[_Ack] = []
    per_queue: dict[str, int] = {}
    b = Batch()
    for i, w in enumerate(group):
        if not decided[2 * i]:
            continue
        w.won = True
        winners.append(w)
        outcomes.terminal_ops(w.spec, w.attempt.number, State.SUCCEEDED, now, w.free, b)
        per_queue[w.spec.queue] = per_queue.get(w.spec.queue, 0) + 1
    if not winners:
        return
    for w in winners:
        await ctx.hooks.after_decided(outcomes.node, w.spec, w.attempt)
    counted = []
    for q, n in per_queue.items():
        b.incrby(k.count(q, State.SUCCEEDED), n)  # the lifetime total
        counted.append(outcomes.counts.add(b, q, State.SUCCEEDED, now, n))  # the count the listing matches
    token = ctx.minutes.incr(b, k, int(now // 60), "processed", len(winners))
    # One MGET of every winner's children, after every cur write (see Outcomes._terminal).
    b.mget([k.kids(w.spec.id) for w in winners])
    kids = (await store.execute(b))[-1]
    ctx.minutes.armed(token)
    for c in counted:
        outcomes.counts.armed(c)
    for w, kids_raw in zip(winners, kids):
        await outcomes.terminal_done(w.spec, w.attempt.number, State.SUCCEEDED, kids_raw)
