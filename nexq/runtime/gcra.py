"""Smooth cluster-wide rate limits: GCRA on single-key commands.

GCRA (the generic cell rate algorithm) keeps one number per limited task
type, the theoretical arrival time ``tat``. With ``COUNT/PER;burst=B`` the
emission interval is ``T = PER / COUNT`` and the tolerance ``tau = (B - 1) * T``.
A start at ``now`` is allowed when ``tat - now <= tau`` and moves ``tat`` to
``max(tat, now) + T``. So B tasks may start at once, then one every T, and no
window of length PER ever holds more than COUNT + B - 1 starts.

The update must be a compare-and-set, and Pogocache has none (``SET XX GET``
swaps, but a loser has already overwritten the winner's value, which can move
``tat`` backwards and let two starts share one interval). So ``tat`` is a log
of versions, each written once:

- ``limit:{type}:tat:{n}``: ``tat`` after the n-th start (unix
  microseconds), written with
  ``SET NX PX ttl``. Whoever writes version n+1 first is the one start that
  followed version n (the compare-and-set on version n); a loser writes
  nothing and reads again.
- ``limit:{type}:tat:head``: a hint naming a recent version, set after each
  write (it may lag or even step back; readers probe forward from it).

A reader takes the newest live version: it reads the hint and the next
:data:`PROBE` versions in one ``MGET`` and moves on while the last one is
live. No live version means the limit was idle longer than the versions'
TTL, which is longer than any ``tat`` stays in the future (``tau + T``) plus
:data:`MARGIN`; the reader then writes the version after the hint.

A start decides with ``now`` read just before its write and runs right after
it; a write answered more than :data:`MAX_LAG` later is not used (the
permit is wasted, never doubled), so a process paused between reading and
writing cannot start on stale state. docs/design.md ("Deadlines,
dependencies, limits") has the crash analysis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..keys import Keys
from ..queue.malformed import decoded
from ..store import Batch, Store

if TYPE_CHECKING:
    from .limits import RateLimit

PROBE = 4  # versions read past the hint per round trip
MARGIN = 10.0  # seconds a version outlives the longest time its tat can matter
MAX_LAG = 1.0  # seconds between deciding and the write's answer after which the permit is not used
MAX_TRIES = 16  # lost races before a caller is told to wait one interval
US = 1_000_000  # tat is kept in whole microseconds


class Gcra:
    """Takes starts from each task type's rate limit, shared through the store."""

    def __init__(self, store: Store, keys: Keys, clock: Callable[[], float]) -> None:
        self.store, self.keys, self.clock = store, keys, clock
        self._seen: dict[str, int] = {}  # type -> newest version seen here: where to probe from

    async def take(self, type: str, rate: RateLimit) -> float:
        """Take one start of ``type`` now: returns 0.0 when it may start at
        once, else the seconds until a start can be had (nothing was taken)."""
        # Whole microseconds: exact sums, so B starts fit a tolerance of
        # (B - 1) intervals; the interval rounds up, never allowing more.
        interval = math.ceil(rate.interval * US)
        tau = (rate.burst - 1) * interval
        ttl_ms = (tau + interval) // 1000 + int(MARGIN * 1000)
        for _ in range(MAX_TRIES):
            n, tat = await self._newest(type)
            now = self.clock()
            if tat - math.floor(now * US) > tau:  # rounding either way makes it stricter
                return max(tat - math.floor(now * US) - tau, 1) / US
            new = max(tat, math.ceil(now * US)) + interval
            b = Batch().set(self._version(type, n + 1), str(new), nx=True, px=ttl_ms)
            b.set(self.keys.limit(type, "tat:head"), str(n + 1), px=ttl_ms)
            won = (await self.store.execute(b))[0]
            self._seen[type] = n + 1  # written now, by us or by the racer who beat us
            if won and self.clock() - now <= MAX_LAG:
                return 0.0
        return rate.interval

    async def _newest(self, type: str) -> tuple[int, int]:
        """The newest live version of ``type``'s tat and its value in unix
        microseconds (0 when none lives: the limit has been idle)."""
        h = self._seen.get(type)
        if h is None:
            h = _number(await self.store.get(self.keys.limit(type, "tat:head")), self.keys.limit(type, "tat:head"))
        while True:
            names = [self.keys.limit(type, "tat:head"), *(self._version(type, h + i) for i in range(PROBE))]
            head_raw, *values = await self.store.mget(names)
            head = _number(head_raw, names[0])
            live = [i for i, v in enumerate(values) if v is not None]
            if (live and live[-1] == PROBE - 1) or head >= h + PROBE:
                h = max(h + PROBE - 1, head)  # there may be newer versions: read on
                continue
            if not live:
                return h, 0
            newest = live[-1]
            value = values[newest]
            assert value is not None
            return h + newest, _number(value, names[1 + newest])

    def _version(self, type: str, n: int) -> str:
        return self.keys.limit(type, f"tat:{n}")


def _number(raw: bytes | None, key: str) -> int:
    """The integer at ``key``; 0 if missing or malformed (logged with the key:
    a value written behind Nexq's back must not stop the type's tasks)."""
    got = decoded(int, raw, key) if raw is not None else 0
    return got or 0
