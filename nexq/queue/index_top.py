"""The top of the listing index, as reconciliation sees it round by round.

``seq`` counts the index positions handed out. A store that lost writes
may have set it back while entries past it exist; and a producer may hold
a position reserved ahead for up to ``INDEX_HOLD`` s before writing it
(:mod:`.reservations`), so a hole near the top may still fill.
"""

from __future__ import annotations

from collections import deque

from .context import NodeContext
from .reservations import INDEX_HOLD

CHUNK = 500  # index positions read per MGET when probing past seq


class IndexTop:
    """The highest index position in use, and the positions settled."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.seen = 0  # the highest index position this process has seen in use
        self._tops: deque[tuple[float, int]] = deque()  # (when, seen) of recent reads

    async def read(self) -> tuple[int, bool]:
        """The highest index position in use, and whether ``seq`` had to be
        moved up to it: if the store set ``seq`` back (it lost increments),
        entries exist past it; ``seq`` then moves to the last one, so new
        tasks stop landing on taken positions (producers also refuse to
        overwrite one, see Producer._reindex)."""
        k, store = self.ctx.keys, self.ctx.store
        seq = int(await store.get(k.seq) or 0)
        top = probe = max(seq, self.seen)
        while True:
            found = await store.mget([k.index(n) for n in range(probe + 1, probe + CHUNK + 1)])
            last = max((probe + j + 1 for j, v in enumerate(found) if v is not None), default=0)
            if not last:
                break
            top = probe = last
        if top > seq:
            await store.incrby(k.seq, top - seq)
        self.seen = top
        self._tops.append((self.ctx.clock(), top))
        return top, top > seq

    def settled(self) -> int:
        """The highest index position handed out ``INDEX_HOLD`` s ago or more:
        no producer still holds a reservation of it (a hole above may be one)."""
        cutoff, tops = self.ctx.clock() - INDEX_HOLD, self._tops
        settled = 0
        while tops and tops[0][0] <= cutoff:
            settled = tops.popleft()[1]
        if settled:
            tops.appendleft((cutoff, settled))  # still the answer until a later read ages past the cutoff
        return settled
