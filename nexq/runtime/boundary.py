"""Error boundaries for background loops: no store error and no bad entry ends the process.

Every agent loop (wheel, sweep, SAVE, cron, guard, heartbeat, claim,
registry beat) runs each step inside its :class:`Boundary`::

    async with self._wheel:          # a Boundary("wheel", log)
        moved = await broker.run_due()

An exception from the step is logged (one line; the traceback only at
debug level) and the loop sleeps a backoff, doubling from ``first`` to
``cap`` while the step keeps failing, then goes on with its next step. The
same failure repeating is logged again at most every ``quiet`` seconds, with
how often it happened meanwhile; the first success after failures is logged
too. Cancellation and KeyboardInterrupt pass through untouched.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Self

import trio

from ..errors import StoreError, StoreUnavailable


class Every:
    """Says when a repeated message is due again: at most once per ``period`` s per key."""

    def __init__(self, period: float) -> None:
        self.period = period
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, key: str) -> int | None:
        """None: stay quiet (counted); else how many were held back since it was last due."""
        now = trio.current_time()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


class Boundary:
    """Catches, logs and backs off the failures of one loop's steps (see module doc)."""

    def __init__(self, name: str, logger: logging.Logger, *, first: float = 0.5, cap: float = 30.0,
                 quiet: float = 60.0) -> None:
        self.name, self.log = name, logger
        self.first, self.cap = first, cap
        self.failures = 0  # consecutive failed steps
        self.total = 0  # failed steps, ever
        self._every = Every(quiet)

    @property
    def delay(self) -> float:
        """The backoff after the current run of failures."""
        return float(min(self.cap, self.first * 2.0 ** max(0, self.failures - 1)))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        if exc is None:
            if self.failures:
                self.log.info("%s: working again after %d failed attempts", self.name, self.failures)
                self.failures = 0
            return False
        if not isinstance(exc, Exception):
            return False  # cancellation, KeyboardInterrupt, SystemExit: not ours to stop
        self.failures += 1
        self.total += 1
        self._report(exc)
        await trio.sleep(self.delay)
        return True

    def _report(self, exc: Exception) -> None:
        if isinstance(exc, StoreUnavailable):
            level, what = logging.WARNING, "store unavailable"
        elif isinstance(exc, StoreError):
            level, what = logging.ERROR, "store error"
        else:
            level, what = logging.ERROR, f"unexpected {type(exc).__name__}"
        text = str(exc)
        held = self._every.due(f"{type(exc).__name__}:{text}")
        if held is None:
            return
        more = f" ({held} more since last said)" if held else ""
        self.log.log(level, "%s: %s: %s; next try in %.1f s%s", self.name, what, text, self.delay, more)
        if level == logging.ERROR and not isinstance(exc, StoreError):
            self.log.debug("%s: traceback", self.name, exc_info=exc)
