"""Cluster-wide concurrency and rate limits per task type, on store counters.

- ``concurrency_limit=N``: N slot keys ``limit:{type}:slot:{i}``; running an
  attempt needs one, taken with ``SET NX PX lease`` (so a crashed worker's
  slot frees itself), renewed with the attempt's heartbeat, deleted when it
  ends.
- ``rate_limit="100/m;burst=10"``: a smooth limit (GCRA, :mod:`.gcra`):
  one start every ``60/100`` s, up to ``burst`` (default 1) at once after a
  quiet spell; no window of a minute ever holds more than 100 + 10 - 1.

A rate-limited attempt whose turn comes within :data:`SHORT_WAIT` waits for
it in the worker. Otherwise, and when no concurrency slot is free, it is not
run: it is deferred (outcome ``deferred``, not counted against its retries)
through the time wheel to when its turn or a slot is likely, with jitter that
grows with each deferral of the same task (so a long backlog is not claimed
again every interval), so limited tasks wait without polling.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import trio

from ..errors import Defer, StoreUnavailable
from ..hooks import Middleware
from ..keys import Keys
from ..queue import Claimed
from ..store import Batch, Store
from ..task import Outcome
from .gcra import Gcra

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*"
                   r"(?:;\s*burst\s*=\s*(\d+)\s*)?$")
SHORT_WAIT = 1.0  # seconds a rate-limited attempt may wait in its worker for its turn
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


@attrs.frozen
class RateLimit:
    count: int
    per: float  # seconds
    burst: int = 1  # starts allowed at once after a quiet spell

    @property
    def interval(self) -> float:
        """Seconds between starts once the burst is spent."""
        return self.per / self.count

    @property
    def tolerance(self) -> float:
        """How far ahead of the schedule a start may be (the burst, in seconds)."""
        return (self.burst - 1) * self.interval

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``"100/m"``, ``"10/s"``, ``"5/10s"``, ``"1000/h"``, with an optional
        ``";burst=N"`` (N >= 1, default 1); raises ValueError."""
        m = _RATE.match(text)
        if not m or int(m.group(1)) < 1 or (m.group(4) is not None and int(m.group(4)) < 1):
            raise ValueError(f"rate limit {text!r}: expected COUNT/UNIT[;burst=N] such as 100/m, 10/s, "
                             "5/10s or 100/m;burst=10")
        return cls(int(m.group(1)), int(m.group(2) or 1) * _UNITS[m.group(3)], int(m.group(4) or 1))


@attrs.frozen
class Limits:
    concurrency: int | None = None
    rate: RateLimit | None = None

    @property
    def any(self) -> bool:
        return self.concurrency is not None or self.rate is not None


class Limiter:
    """Takes and gives back the permits of one worker process."""

    def __init__(self, store: Store, keys: Keys, lease_ms: int, clock: Callable[[], float]) -> None:
        self.store, self.keys, self.lease_ms = store, keys, lease_ms
        self.rates = Gcra(store, keys, clock)
        self._rng = random.Random()

    async def slot(self, type: str, concurrency: int, owner: str) -> str | None:
        """One of ``type``'s ``concurrency`` slot keys, taken for ``owner``; None if all are held."""
        order = list(range(concurrency))
        self._rng.shuffle(order)
        names = [self.keys.limit(type, f"slot:{i}") for i in order]
        b = Batch()
        for n in names:
            b.set(n, owner, nx=True, px=self.lease_ms)
        won = [n for n, ok in zip(names, await self.store.execute(b)) if ok]
        if won[1:]:
            await self.store.delete(*won[1:])
        return won[0] if won else None

    def slot_wait(self) -> float:
        """When an attempt that found every slot held should try again (when
        a slot frees is unknown: soon, spread out)."""
        return self._rng.uniform(0.1, 1.0)

    def spread(self, wait: float, rate: RateLimit, deferrals: int) -> float:
        """When a deferred attempt should come back: after ``wait``, plus
        jitter of a quarter interval doubling with each earlier deferral (up
        to 16 intervals), so waiting tasks do not all return at once."""
        return wait + self._rng.uniform(0, rate.interval * 0.25 * 2 ** min(max(deferrals, 0), 6))

    async def renew(self, slots: list[tuple[str, str]]) -> None:
        """Extend held slots (key, owner) with the heartbeat."""
        if slots:
            b = Batch()
            for key, owner in slots:
                b.set(key, owner, xx=True, px=self.lease_ms)
            await self.store.execute(b)

    async def release(self, slot: str) -> None:
        await self.store.delete(slot)


class LimitTasks(Middleware):
    """Applies each task type's limits around its handler: takes a permit
    in ``before_process`` (or defers the attempt with :class:`Defer`),
    renews it with the heartbeat, gives it back in ``after_process``."""

    def __init__(self, limits: Mapping[str, Limits], store: Store, keys: Keys, lease_ms: int,
                 clock: Callable[[], float]) -> None:
        self.limits = {t: lim for t, lim in limits.items() if lim.any}
        self.limiter = Limiter(store, keys, lease_ms, clock)
        self.slots: dict[tuple[str, int], tuple[str, str]] = {}  # attempt -> (slot key, owner)

    async def before_process(self, ctx: Any) -> None:
        c: Claimed = ctx.task
        lim = self.limits.get(c.spec.type)
        if lim is None:
            return
        slot = None
        if lim.concurrency is not None:
            slot = await self.limiter.slot(c.spec.type, lim.concurrency, c.worker)
            if slot is None:
                raise Defer(self.limiter.slot_wait(), f"{c.spec.type} is at its concurrency limit")
        if lim.rate is not None:
            wait = await self._turn(c, lim.rate)
            if wait:
                if slot is not None:
                    await self.limiter.release(slot)
                raise Defer(self.limiter.spread(wait, lim.rate, c.attempt - 1),
                            f"{c.spec.type} is at its rate limit")
        if slot is not None:
            self.slots[(c.spec.id, c.attempt)] = (slot, c.worker)

    async def _turn(self, c: Claimed, rate: RateLimit) -> float:
        """Take a start from the rate limit, waiting here for a turn that
        comes within SHORT_WAIT; else the seconds until one is likely."""
        waited = 0.0
        while (wait := await self.limiter.rates.take(c.spec.type, rate)) > 0:
            if waited + wait > SHORT_WAIT:
                return wait
            await trio.sleep(wait)
            waited += wait
        return 0.0

    async def after_process(self, ctx: Any, outcome: Outcome | None, result: Any,
                            error: BaseException | None, duration: float) -> None:
        held = self.slots.pop((ctx.task.spec.id, ctx.task.attempt), None)
        if held is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                try:
                    await self.limiter.release(held[0])
                except StoreUnavailable:
                    pass  # it expires with the lease

    async def after_heartbeat(self, running: Sequence[Claimed]) -> None:
        await self.limiter.renew(list(self.slots.values()))
