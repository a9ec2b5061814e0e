"""Reading lanes for one consumer: which slots to look at, and what it saw.

A lane's ``head`` only moves past resolved slots, so one empty slot (a
producer's reserved block not written yet, a producer that died, a write a
store lost) holds it back until the slot is tombstoned after the grace
period. Meanwhile the work behind it must still flow: each reader keeps,
per lane, a cursor past the slots it saw resolved or empty, and the empty
ones below it (its holes). A round reads the holes again (a late write
lands there) and the window after the cursor, however far the head lags.

The cursor is this reader's memory, never shared: every slot below it was
seen taken (``~``, which a store keeps for an hour) or is a hole read again
each round. It is dropped when it can no longer be trusted (the lane's tail
went back below it: a store that lost writes hands slot numbers out again)
and after :data:`CURSOR_TTL` seconds, so a reader re-reads from the head now
and then.
"""

from __future__ import annotations

import random

import attrs
import trio

from ..codec import decode_ref
from ..keys import Keys
from ..store import Batch, Store
from .lanes import TAKEN, TAKEN_TTL_MS, Ref
from .malformed import decoded

CURSOR_TTL = 10.0  # seconds a reader trusts its cursor before reading from the head again
MAX_HOLES = 256  # empty slots remembered below a lane's cursor, at most

Lane = tuple[str, int]
Plan = list[tuple[Lane, int, int]]  # (lane, head, slots to read after the lane's start)


@attrs.frozen
class Slot:
    """A slot seen by ``peek``: its key, its lane in the plan, what it held."""

    plan_idx: int
    n: int
    key: str
    ref: Ref | None  # a task attempt waiting to be claimed
    taken: bool  # ``~``: already claimed


@attrs.define
class _Ahead:
    """A lane read past its head: every slot up to ``cursor`` is taken or in ``holes``."""

    cursor: int
    holes: list[int]
    since: float


class LaneReader:
    """Claims slots from lanes for one consumer; remembers holes it has seen.

    Claiming is peek (``MGET`` the slots), lease (the engine takes
    ``lease:{id}:{a}`` with ``SET NX``: that is what makes a consumer the
    attempt's only runner), then settle: ``SET ~ XX`` on the slots resolved,
    tombstones on old holes and the new heads, in the same pipeline as the
    lease checks, after them. A consumer dying before it settles leaves the
    ref in its slot, so the attempt is claimed again once the lease expires.

    ``grace`` is how long a reserved-but-empty slot may stay empty before it
    is tombstoned (its producer is presumed dead; a live one retries).
    """

    def __init__(self, store: Store, keys: Keys, grace: float = 5.0) -> None:
        self.store, self.keys, self.grace = store, keys, grace
        self._holes: dict[str, float] = {}  # slot key -> when first seen empty
        self._ahead: dict[Lane, _Ahead] = {}
        self._starts: list[int] = []  # per entry of the last peeked plan: where its window began
        self.contended = False  # did the last round lose lease races?
        self.stalled = False  # did the last round find only holes and taken slots?
        self.lost_races = 0
        self._rng = random.Random()

    def start(self, lane: Lane, head: int, tail: int) -> int:
        """Where this reader's window of ``lane`` begins (its cursor, or
        ``head``); forgets a cursor it cannot trust any more."""
        a = self._ahead.get(lane)
        if a is None:
            return head
        if a.cursor <= head or a.cursor > tail or trio.current_time() - a.since > CURSOR_TTL:
            del self._ahead[lane]
            return head
        return a.cursor

    def holes(self, lane: Lane, head: int) -> list[int]:
        """The empty slots this reader reads again below its cursor of ``lane``."""
        a = self._ahead.get(lane)
        return [] if a is None else [n for n in a.holes if n > head]

    def choose(self, slots: list[Slot], wants: list[int]) -> list[Slot]:
        """Pick up to ``wants[i]`` waiting slots of each planned lane: the
        first ones, or a random run of them when contended."""
        by_lane: dict[int, list[Slot]] = {}
        for s in slots:
            if s.ref is not None:
                by_lane.setdefault(s.plan_idx, []).append(s)
        out: list[Slot] = []
        for idx, want in enumerate(wants):
            waiting = by_lane.get(idx, [])
            start = 0
            if self.contended and len(waiting) > want:
                start = self._rng.randrange(len(waiting) - want + 1)
            out += waiting[start : start + want]
        return out

    async def peek(self, plan: Plan) -> list[Slot]:
        """What each planned lane's holes and ``count`` slots after its
        start (see :meth:`start`) hold, lowest first per lane.

        ``plan`` holds ((queue, priority), head, count).
        """
        keys: list[tuple[int, int, str]] = []
        self._starts = []
        for idx, (lane, head, count) in enumerate(plan):
            a = self._ahead.get(lane)
            start = a.cursor if a is not None and a.cursor > head else head
            self._starts.append(start)
            numbers = [*self.holes(lane, head), *range(start + 1, start + count + 1)]
            keys += [(idx, n, self.keys.lane_slot(*lane, n)) for n in numbers]
        values = await self.store.mget([k for _, _, k in keys]) if keys else []
        out = []
        for (idx, n, key), v in zip(keys, values):
            ref = None
            if v is not None and v != TAKEN:
                got = decoded(decode_ref, v, key)
                ref = Ref(*got) if got is not None else None
            # A malformed slot counts as taken: the head moves past it.
            out.append(Slot(idx, n, key, ref, v == TAKEN or (v is not None and ref is None)))
        return out

    def settle(self, plan: Plan, slots: list[Slot], resolved: set[str], b: Batch) -> None:
        """Add to ``b``: mark ``resolved`` slots taken, tombstone holes older
        than the grace period, and move each lane's head past the slots that
        are now resolved without a gap; move this reader's cursors past the
        slots seen resolved or empty."""
        now = trio.current_time()
        per_lane: list[list[Slot]] = [[] for _ in plan]
        for s in slots:
            per_lane[s.plan_idx].append(s)
        for idx, ((q, p), head, _) in enumerate(plan):
            start = self._starts[idx] if idx < len(self._starts) else head
            done, upto, cursor, holes = 0, start, start, []
            gap = False  # an unresolved slot met: the head stops before it
            for s in per_lane[idx]:
                ok = s.taken or s.key in resolved
                if s.key in resolved:
                    b.set(s.key, TAKEN, xx=True, px=TAKEN_TTL_MS)
                    done += 1
                empty = s.ref is None and not s.taken
                if empty:
                    first = self._holes.setdefault(s.key, now)
                    if now - first >= self.grace:
                        # Resolved next time round whether the NX wins (a dead
                        # producer's hole) or loses (the late ref landed).
                        b.set(s.key, TAKEN, nx=True, px=TAKEN_TTL_MS)
                        self._holes.pop(s.key, None)
                if s.n <= start:  # a hole below the cursor, read again
                    if not ok:
                        upto = min(upto, s.n - 1) if not gap else upto
                        gap = True
                        holes.append(s.n)
                    continue
                if ok and not gap:
                    upto = s.n
                if not ok:
                    gap = True
                if cursor == s.n - 1 and (ok or empty):
                    cursor = s.n
                    if empty:
                        holes.append(s.n)
            if upto > head:
                b.set(self.keys.lane_head(q, p), upto)
            if done:
                # The lease winners resolve each ref once: the lane's depth is in - out.
                b.incrby(self.keys.lane_resolved(q, p), done)
            self._remember((q, p), upto, cursor, holes, now)
        if len(self._holes) > 10_000:
            self._holes.clear()

    def _remember(self, lane: Lane, head: int, cursor: int, holes: list[int], now: float) -> None:
        """Keep the cursor of ``lane`` while the head lags behind it."""
        holes = [n for n in holes if n > head]
        if cursor <= head or not holes or len(holes) > MAX_HOLES:
            self._ahead.pop(lane, None)
            return
        old = self._ahead.get(lane)
        self._ahead[lane] = _Ahead(cursor, holes, old.since if old is not None else now)
