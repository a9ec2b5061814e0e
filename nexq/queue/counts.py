"""Counts of ended tasks that match the listing, expiry included.

A finished task is listed until its keys expire (the retention R). So that
the per-status counts drop at the same moment, ended tasks are counted in
windows: a task of queue q that ends ``state`` at time t counts in
``tc:{q}:{state}:{w}`` with ``w = t // W``, and every key of the task
(:meth:`~nexq.queue.outcomes.Outcomes.terminal_ops`) expires at the
window's end + R, exactly when that counter does. A count is the sum of the
live windows (one ``MGET`` of about ``WINDOWS`` keys per queue and state),
so no reader ever counts an expired task and nothing needs ``KEYS`` or
``SCAN``. The price: a finished task is kept up to W = R / ``WINDOWS``
longer than R.

The hot path stays one ``INCRBY`` per group of tasks ending together: a
window's key is created with its TTL (``SET 0 NX PX``) the first time a
process counts into it, as with the per-minute counters. Whoever takes a
task out of a terminal state (requeue, delete; both win ``rq:{id}:{a}``
first, so only one does) takes it out of its window (``INCRBY -1``).
"""

from __future__ import annotations

import math

from ..keys import Keys, State
from ..store import Batch

WINDOWS = 64  # windows per retention: finished tasks live at most R / 64 longer than R
TERMINAL = (State.SUCCEEDED.value, State.DEAD.value, State.CANCELLED.value)


class TerminalCounts:
    """The windowed counters of ended tasks on one node (see module doc)."""

    def __init__(self, keys: Keys, retention: float) -> None:
        self.keys, self.retention = keys, retention
        self.width = max(1, math.ceil(retention / WINDOWS))  # seconds, whole: EXPIRE's unit
        self._armed: set[tuple[str, str, int]] = set()

    def window(self, t: float) -> int:
        return int(t // self.width)

    def ttl_ms(self, ended: float, now: float) -> int:
        """Milliseconds from ``now`` until a task that ended at ``ended``
        expires: the end of its window plus the retention."""
        return max(1, math.ceil(((self.window(ended) + 1) * self.width + self.retention - now) * 1000))

    def add(self, b: Batch, queue: str, state: str, ended: float, n: int = 1) -> tuple[str, str, int] | None:
        """Count ``n`` tasks that ended ``state`` at ``ended`` (in ``b``); pass
        the result to :meth:`armed` once ``b`` succeeded."""
        w = self.window(ended)
        key = self.keys.terminal_count(queue, state, w)
        if (queue, state, w) in self._armed:
            b.incrby(key, n)
            return None
        b.set(key, 0, nx=True, px=self.ttl_ms(ended, ended)).incrby(key, n)
        return (queue, state, w)

    def armed(self, token: tuple[str, str, int] | None) -> None:
        if token is not None:
            if len(self._armed) > 1024:  # only the current windows matter
                self._armed.clear()
            self._armed.add(token)

    def remove(self, b: Batch, queue: str, state: str, ended: float, now: float) -> None:
        """Take one task that ended ``state`` at ``ended`` out of its window
        (in ``b``; the key is created with its TTL if missing, never without)."""
        key = self.keys.terminal_count(queue, state, self.window(ended))
        b.set(key, 0, nx=True, px=self.ttl_ms(ended, now)).incrby(key, -1)

    def read_keys(self, queue: str, state: str, now: float) -> list[str]:
        """The keys of every window that may still hold tasks at ``now``."""
        first = self.window(now - self.retention) - 1
        return [self.keys.terminal_count(queue, state, w) for w in range(first, self.window(now) + 1)]


def total(values: list[bytes | None]) -> int:
    """The sum of windows read with :meth:`TerminalCounts.read_keys` (a
    window below 0, from a decrement racing its expiry, counts as 0)."""
    return sum(max(0, int(v)) for v in values if v is not None)
