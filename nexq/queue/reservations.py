"""Numbers reserved ahead: a lone enqueue in one round trip.

An enqueue needs an index position (``INCRBY seq``) and, for a task ready
now, a lane slot (``INCRBY tail``) before it can write the task; asking for
them is a round trip of its own. A producer reserves them ahead instead, in
the pipeline of each write (``INCRBY seq k``, ``INCRBY tail k``), so its
next enqueue is one pipeline: spec, index, state, slot. A block holds what
the producer's last call took of that counter (a loop of single enqueues:
1; at most :data:`MAX_BLOCK`): so a producer that stops leaves at most one
call's worth of slots empty per lane. (Bigger blocks would save only the
``INCRBY`` that rides along with each write, at the price of more empty
slots ahead of other producers' tasks.)

A block of lane slots is written into only within :data:`HOLD` seconds of
its reservation (below the claimers' grace for empty slots, 5 s, with room
for a slow round trip): an older one is given up and the call reserves
again (two round trips: the first enqueue of a producer, and the first
after an idle spell of ``HOLD`` unless the producer is kept warm, below,
cost that). Its unused index positions are left as
holes (the listing and reconciliation skip missing entries) and its unused
slots are tombstoned (``SET ~ NX``) in the next pipeline, or by
:meth:`Producer.release` on close; a producer that died leaves them to the
claimers, which tombstone a slot empty for longer than their grace, and
which meanwhile read past such slots (:mod:`~nexq.queue.lane_reader`): an
empty slot never holds up the work behind it. Should a claimer tombstone a
reserved slot first anyway (a producer frozen for seconds), the producer's
``SET NX`` fails and it pushes again to a new slot. The lanes' depth counts
written refs (``lane:in``), so reserved slots never count as pending
(:func:`~.lanes.depth`).

An index position is used for up to :data:`INDEX_HOLD` seconds (a hole
there costs the listing a read, not a wait; reconciliation keeps its
low-water mark below positions handed out that recently,
:mod:`~nexq.queue.reconcile`), so renewing it burns few positions.

**Kept warm.** A producer that stays idle would pay the second round trip
on its next call; so the processes that produce (the runtime, ``nexq.Client``,
``nexq.AsyncClient``) renew an idle producer's blocks in the background
(:meth:`Reservations.renew`: a lane's block once it is :data:`WARM_AFTER`
old, the index's once it is :data:`INDEX_WARM` old; the old slots are
tombstoned in the same pipeline). An idle producer thus writes one small
pipeline every ``WARM_AFTER`` seconds, for at most :data:`WARM_LANES`
lanes (the ones it used last), and every lone enqueue after its first is
one round trip, however long the pause.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..keys import Keys
from ..store import Batch
from .lanes import TAKEN, TAKEN_TTL_MS

HOLD = 3.0  # seconds a reserved block of lane slots is written into after its reservation
INDEX_HOLD = 60.0  # the same for index positions
WARM_AFTER = 2.0  # a kept-warm lane block is renewed once this old (HOLD minus a tick and a slow round trip)
WARM_TICK = 0.5  # seconds between a keeper's looks at its producers (no store call unless one is due)
INDEX_WARM = 45.0  # a kept-warm index block is renewed once this old
WARM_LANES = 8  # lanes kept warm per producer: the ones used last
MAX_BLOCK = 64  # numbers reserved ahead per counter, at most

Lane = tuple[str, int]
Counter = Lane | None  # a lane's tail, or None: the index's seq


class Block:
    """Numbers ``next .. last`` of one counter, reserved at ``at``."""

    __slots__ = ("at", "last", "next")

    def __init__(self, first: int, last: int, at: float) -> None:
        self.next, self.last, self.at = first, last, at

    def take(self, n: int) -> list[int]:
        """Up to ``n`` numbers, lowest first."""
        first = self.next
        if n == 1 and first <= self.last:  # the lone enqueue's case
            self.next = first + 1
            return [first]
        got = list(range(first, min(self.last, first + n - 1) + 1))
        self.next += len(got)
        return got

    @property
    def left(self) -> int:
        return self.last - self.next + 1


class Reservations:
    """One producer's reserved index positions and lane slots (see module doc).

    Not shared between concurrent callers: one per producer, whose calls
    interleave only at store calls (each method runs without awaiting).
    """

    def __init__(self, keys: Keys, clock: Callable[[], float] = time.monotonic) -> None:
        self.keys, self.clock = keys, clock
        self.blocks: dict[Counter, Block] = {}
        self.size: dict[Counter, int] = {}  # the next refill's size per counter
        self._keys: dict[Counter, str] = {}  # each counter's key, built once
        self.stale: list[tuple[Lane, int, int]] = []  # given-up slot ranges to tombstone
        self.calls = 0  # calls begun; ``used`` holds each counter's last
        self.used: dict[Counter, int] = {}

    def start(self) -> None:
        """A call begins: give up blocks reserved ``HOLD`` (index positions:
        ``INDEX_HOLD``) or more seconds ago."""
        now = self.clock()
        self.calls += 1
        for counter, block in list(self.blocks.items()):
            if now - block.at >= (HOLD if counter is not None else INDEX_HOLD):
                self._give_up(counter, block)

    def take(self, counter: Counter, n: int) -> list[int]:
        """Up to ``n`` reserved numbers of ``counter``, lowest first (``n``
        sizes the next block reserved ahead for it)."""
        self.size[counter] = n
        self.used[counter] = self.calls
        block = self.blocks.get(counter)
        return block.take(n) if block is not None else []

    def reserve(self, b: Batch, need: dict[Counter, int]) -> list[tuple[Counter, int, int]]:
        """Add to ``b`` the ``INCRBY`` of each counter: ``need[c]`` numbers for
        this call, plus a block for the next calls where the counter's block
        is used up. Returns what :meth:`reserved` needs."""
        plan = []
        counters = list(need)
        # (inlined: this runs for every write)
        counters += [c for c, blk in self.blocks.items() if blk.next > blk.last and c not in need]
        for c in counters:
            block = self.blocks.get(c)
            extra = 0
            if block is None or block.next > block.last:
                # Enough for one more call like the last (a loop of single
                # enqueues: 1), so at most that many slots wait empty when
                # the producer stops.
                extra = min(MAX_BLOCK, self.size.get(c, 1))
            n = need.get(c, 0) + extra
            if n:
                plan.append((c, len(b), n))
                key = self._keys.get(c)
                if key is None:
                    key = self._key(c)
                b.incrby(key, n)
        return plan

    def _key(self, c: Counter) -> str:
        key = self._keys.get(c)
        if key is None:
            key = self._keys[c] = self.keys.seq if c is None else self.keys.lane_tail(*c)
        return key

    def reserved(self, plan: list[tuple[Counter, int, int]], answers: list[object],
                 need: dict[Counter, int]) -> dict[Counter, list[int]]:
        """The numbers :meth:`reserve` got for this call, per counter; the
        rest becomes the counter's new block."""
        now, out = self.clock(), {}
        for c, at, n in plan:
            top = int(answers[at])  # type: ignore[call-overload]
            first, mine = top - n + 1, need.get(c, 0) if need else 0
            if mine:
                out[c] = list(range(first, first + mine))
            if n > mine:
                old = self.blocks.get(c)
                if old is not None and old.next <= old.last:
                    self._give_up(c, old)
                self.blocks[c] = Block(first + mine, top, now)
        return out

    def due(self) -> list[Counter]:
        """The counters whose blocks a warm producer renews now (see the
        module doc): none while its calls keep them young."""
        now = self.clock()
        return [c for c, blk in self.blocks.items()
                if now - blk.at >= (WARM_AFTER if c is not None else INDEX_WARM)]

    def renew(self, b: Batch) -> list[tuple[Counter, int, int]]:
        """Add to ``b`` what keeps an idle producer's next call at one round
        trip: a fresh block (as big as the counter's last) for each counter
        :meth:`due`, and the tombstones of the blocks it replaces. A lane
        beyond the :data:`WARM_LANES` used last is given up, not renewed.
        Returns what :meth:`reserved` needs (with ``need={}``)."""
        due = self.due()
        lanes = sorted((c for c in self.blocks if c is not None), key=lambda c: self.used.get(c, 0))
        cold = set(lanes[:-WARM_LANES])
        for c in due + [c for c in cold if c not in due]:
            self._give_up(c, self.blocks[c])
        plan = []
        for c in due:
            if c in cold:
                continue
            n = min(MAX_BLOCK, self.size.get(c, 1))
            plan.append((c, len(b), n))
            b.incrby(self._key(c), n)
        self.tombstones(b)
        return plan

    def tombstones(self, b: Batch) -> None:
        """Add to ``b`` the tombstones of slots given up since the last call."""
        for (q, p), first, last in self.stale:
            for n in range(first, last + 1):
                b.set(self.keys.lane_slot(q, p, n), TAKEN, nx=True, px=TAKEN_TTL_MS)
        self.stale = []

    def release(self, b: Batch) -> None:
        """Give up every block (the producer closes): tombstones into ``b``."""
        for counter, block in list(self.blocks.items()):
            self._give_up(counter, block)
        self.tombstones(b)

    def _give_up(self, counter: Counter, block: Block) -> None:
        if block.left and counter is not None:  # unused index positions are simply skipped
            self.stale.append((counter, block.next, block.last))
        del self.blocks[counter]
