"""Admission control: Nexq accepts only the tasks the store can keep.

A cache that fills up evicts silently, pending tasks included, so with
``--store-memory-limit`` every enqueue call is checked before anything is
written: the bytes it is about to add (estimated from its encoded specs)
plus the bytes Nexq already keeps in the store must stay under the limit
less a head room (``HEADROOM``), else the whole call is refused with
:class:`~nexq.errors.StoreFull` (HTTP 503 ``store_full``). A poll of the
store's memory could be outrun by a burst, and Pogocache's ``rss`` and
``bytes`` never come back down once keys expire, so Nexq counts its own
bytes instead, in two counter families per store node shared by every
process:

- ``acct:live``: bytes of tasks that have not ended (added at enqueue,
  taken off when the task ends);
- ``acct:ret:{t}``: bytes of ended tasks whose keys expire by unix time
  ``t`` (rounded up to a grid of about 1/32 of the retention), each counter
  expiring at ``t`` itself: the count falls by itself as the retention
  passes, exactly when the keys it counts go.

A task's estimate is its encoded spec (``SPEC_FACTOR`` for the allocator)
plus ``TASK_ALLOWANCE`` for its other keys: state, index, lane slot, lease,
wheel entries and an outcome record with a small result (~1.2 KB measured
on Redis 7). What the estimate misses (failed attempts' tracebacks, results
larger than the allowance, the store's own overhead, other processes'
changes not yet folded in) has the head room.

Each process keeps its changes locally and folds them into the counters,
reading them all back, in one round trip every ``SYNC_EVERY`` seconds (the
guard's loop), or after every change when no loop runs (``app.connect()``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import trio

from ..codec import encode_spec
from ..errors import StoreFull
from ..keys import Keys
from ..queue.context import FIN_GRACE
from ..store import Batch, Store
from ..task import TaskSpec

log = logging.getLogger("nexq.guard")

SPEC_FACTOR = 1.1  # allocator rounding of a stored value
TASK_ALLOWANCE = 1536  # bytes of a task's keys besides its spec (cur, idx, slot, lease, wheel, fin)
FIN_ALLOWANCE = 512  # the part of it kept FIN_GRACE longer: the succeeded attempt's record
HEADROOM = 0.2  # of the limit, kept free for what the estimates miss
REFUSALS_SHOWN = 60.0  # seconds a refused call is reported (/healthz), unless a call is accepted since
SYNC_EVERY = 1.0  # seconds between folds of local changes into the store's counters
RESERVATION_TTL = 30.0  # seconds an admitted call may take to be written, else it is forgotten
BUCKETS = 32  # expiry buckets per retention


def task_bytes(spec: TaskSpec) -> int:
    """The bytes a task keeps in the store, estimated (the same before and
    after its index number is assigned, so enqueue and end agree)."""
    return int((len(encode_spec(spec)) - len(str(spec.seq))) * SPEC_FACTOR) + TASK_ALLOWANCE


def _timer() -> float:
    """Seconds for local timing: trio's clock under trio (tests jump it),
    else the monotonic clock (nexq.Client and AsyncClient admit without trio)."""
    try:
        return trio.current_time()
    except RuntimeError:
        return time.monotonic()


def _int(raw: bytes | None, key: str) -> int:
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError:
        log.error("malformed counter at %s ignored: %r", key, raw[:40])
        return 0


class Accounting:
    """Nexq's bytes on one store node, and the admission decision (see module doc)."""

    def __init__(self, store: Store, keys: Keys, limit: int | None, retention: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.keys, self.limit, self.clock = store, keys, limit, clock
        self.retention = max(1, int(retention))
        self.looping = False  # a guard loop syncs; else every change syncs at once
        self.live = 0  # acct:live at the last sync
        self.retained = 0  # sum of acct:ret:* at the last sync
        self.synced_at: float | None = None  # _timer() of the last sync
        self.refused = 0  # enqueue calls refused by this process
        self.forced: str | None = None  # refuse every call with this reason (an operator's or a test's)
        self._refusal: tuple[str, float] | None = None  # the last refused call's reason, when
        self._live_delta = 0
        self._ret_delta: dict[int, int] = {}
        self._reserved: dict[str, tuple[int, float]] = {}  # task id -> (bytes, admitted at)
        self._reserved_total = 0
        self._syncing = False

    @property
    def budget(self) -> int | None:
        """Bytes Nexq may account for: the limit less the head room."""
        return None if self.limit is None else int(self.limit * (1 - HEADROOM))

    @property
    def accounted(self) -> int:
        """Nexq's bytes in the store as this process knows them now."""
        pending = sum(self._ret_delta.values()) + self._reserved_total
        return max(0, self.live + self._live_delta) + self.retained + pending

    # -- events ------------------------------------------------------------------

    def admit(self, specs: Sequence[TaskSpec]) -> None:
        """Refuse ``specs`` (StoreFull, nothing written) unless they fit; else reserve their bytes."""
        if self.forced:
            self.refused += 1
            raise StoreFull(self.forced)
        budget = self.budget
        if budget is None:
            return
        sizes = [task_bytes(s) for s in specs]
        need, room = sum(sizes), budget - self.accounted
        if need > room:
            self.refused += 1
            why = (f"store full: {len(specs)} new task(s) of ~{_mib(need)} refused, they do not fit in the "
                   f"~{_mib(max(0, room))} left (Nexq keeps ~{_mib(self.accounted)} of tasks in the store; "
                   f"--store-memory-limit {_mib(self.limit or 0)} less {HEADROOM:.0%} head room for their "
                   "growth). Retry when workers have drained the backlog and finished tasks have expired "
                   "(NEXQ_RETENTION), or raise the limit")
            if self._refusal is None:
                log.error("store full, refusing new tasks: %s", why)
            self._refusal = (why, _timer())
            raise StoreFull(why)
        if self._refusal is not None:
            log.warning("store has room again (~%s free): accepting new tasks", _mib(room - need))
            self._refusal = None
        now = _timer()
        for s, n in zip(specs, sizes):
            old = self._reserved.get(s.id)
            self._reserved[s.id] = (n, now)
            self._reserved_total += n - (old[0] if old else 0)

    def enqueued(self, specs: Sequence[TaskSpec]) -> None:
        """Tasks were written: their bytes count as live."""
        if self.limit is None:
            return
        for s in specs:
            held = self._reserved.pop(s.id, None)
            if held is not None:
                self._reserved_total -= held[0]
            self._live_delta += held[0] if held else task_bytes(s)

    def ended(self, spec: TaskSpec) -> None:
        """A task ended: its bytes leave ``live`` for the bucket of their expiry."""
        if self.limit is None:
            return
        n, now = task_bytes(spec), self.clock()
        self._live_delta -= n
        body = self._end(now + self.retention, self._width(self.retention))
        fin = self._end(now + self.retention + FIN_GRACE, self._width(self.retention + FIN_GRACE))
        self._ret_delta[body] = self._ret_delta.get(body, 0) + n - FIN_ALLOWANCE
        self._ret_delta[fin] = self._ret_delta.get(fin, 0) + FIN_ALLOWANCE

    async def settle(self) -> None:
        """After a change: sync now unless a loop does (or its last sync is old)."""
        if self.limit is None:
            return
        stale = self.synced_at is None or _timer() - self.synced_at > 5 * SYNC_EVERY
        if not self.looping or stale:
            await self.sync()

    # -- the counters --------------------------------------------------------------

    @staticmethod
    def _width(span: float) -> int:
        return max(1, math.ceil(span / BUCKETS))

    @staticmethod
    def _end(t: float, width: int) -> int:
        return math.ceil(t / width) * width

    def _ends(self, now: float) -> list[int]:
        """Every bucket end that may still hold bytes (both grids)."""
        out: set[int] = set()
        for span in (self.retention, self.retention + FIN_GRACE):
            w = self._width(span)
            first = self._end(now, w)
            out.update(range(first, self._end(now + span, w) + w, w))
        return sorted(out)

    async def sync(self) -> None:
        """Fold this process's changes into the store's counters and read them
        all back (one round trip). Raises StoreError; the changes are kept."""
        if self.limit is None or self._syncing:
            return
        self._syncing = True
        live, ret = self._live_delta, self._ret_delta
        self._live_delta, self._ret_delta = 0, {}
        now = self.clock()
        k = self.keys
        b = Batch()
        if live:
            b.incrby(k.accounting("live"), live)
        for end, n in ret.items():
            b.incrby(k.accounting(f"ret:{end}"), n).expire(k.accounting(f"ret:{end}"), max(1, end - int(now) + 1))
        names = [k.accounting("live"), *(k.accounting(f"ret:{e}") for e in self._ends(now))]
        b.mget(names)
        try:
            values = (await self.store.execute(b))[-1]
        except BaseException:
            self._live_delta += live  # sent again next time (an over-count at worst)
            for end, n in ret.items():
                self._ret_delta[end] = self._ret_delta.get(end, 0) + n
            raise
        finally:
            self._syncing = False
        counts = [_int(v, name) for name, v in zip(names, values)]
        if counts[0] < 0:
            # More ended than was counted in (a crash between a write and its
            # sync, a requeued dead task): bring the counter back to zero.
            self._live_delta -= counts[0]
        self.live, self.retained = max(0, counts[0]), sum(max(0, c) for c in counts[1:])
        self.synced_at = _timer()
        self._forget_stale(self.synced_at)

    def _forget_stale(self, now: float) -> None:
        """Admitted calls never written (refused later, unique keys already held)."""
        for tid, (n, at) in list(self._reserved.items()):
            if now - at > RESERVATION_TTL:
                del self._reserved[tid]
                self._reserved_total -= n

    @property
    def refusing(self) -> str | None:
        """Why new tasks are refused, for health reports: the node cannot take
        even one more task, or a call was refused within REFUSALS_SHOWN s and
        none accepted since; None otherwise."""
        if self.forced:
            return self.forced
        budget = self.budget
        if budget is None:
            return None
        if budget - self.accounted < TASK_ALLOWANCE:
            return (f"store full: new tasks are refused, the store holds ~{_mib(self.accounted)} of Nexq's "
                    f"tasks, at --store-memory-limit {_mib(self.limit or 0)} less {HEADROOM:.0%} head room, "
                    "until workers drain the backlog and finished tasks expire (NEXQ_RETENTION)")
        if self._refusal is not None and _timer() - self._refusal[1] < REFUSALS_SHOWN:
            return self._refusal[0]
        return None

    def status(self) -> dict[str, int | str | None]:
        return {"accounted_bytes": self.accounted, "budget_bytes": self.budget,
                "refused": self.refused, "refusing": self.refusing}


def _mib(n: float) -> str:
    return f"{n / 1048576:.1f} MiB" if n >= 1048576 else f"{n / 1024:.0f} KiB"
