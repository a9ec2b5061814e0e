"""Cluster-wide concurrency and rate limits per task type, on store counters.

- ``concurrency_limit=N``: N slot keys ``limit:{type}:slot:{i}``; running an
  attempt needs one, taken with ``SET NX PX lease`` (so a crashed worker's
  slot frees itself), renewed with the attempt's heartbeat, deleted when it
  ends.
- ``rate_limit="100/m"``: fixed windows ``limit:{type}:rate:{w}`` counted
  with ``INCR`` (expiring after two windows); past the limit, wait for the
  next window.

A limited attempt is not run: it is deferred (outcome ``deferred``, not
counted against its retries) through the time wheel to when a slot or the
next window is likely free, with jitter, so limited tasks wait without
polling.
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

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


@attrs.frozen
class RateLimit:
    count: int
    per: float  # seconds

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``"100/m"``, ``"10/s"``, ``"5/10s"``, ``"1000/h"``; raises ValueError."""
        m = _RATE.match(text)
        if not m or int(m.group(1)) < 1:
            raise ValueError(f"rate limit {text!r}: expected COUNT/UNIT such as 100/m, 10/s or 5/10s")
        return cls(int(m.group(1)), int(m.group(2) or 1) * _UNITS[m.group(3)])


@attrs.frozen
class Limits:
    concurrency: int | None = None
    rate: RateLimit | None = None

    @property
    def any(self) -> bool:
        return self.concurrency is not None or self.rate is not None


class Limiter:
    """Takes and gives back the permits of one worker process."""

    def __init__(self, store: Store, keys: Keys, lease_ms: int) -> None:
        self.store, self.keys, self.lease_ms = store, keys, lease_ms
        self._rng = random.Random()

    async def acquire(self, type: str, limits: Limits, now: float, owner: str) -> tuple[str | None, float | None]:
        """(slot key or None, None) when the attempt may run, else (None, seconds to wait)."""
        slot = None
        if limits.concurrency is not None:
            order = list(range(limits.concurrency))
            self._rng.shuffle(order)
            names = [self.keys.limit(type, f"slot:{i}") for i in order]
            b = Batch()
            for n in names:
                b.set(n, owner, nx=True, px=self.lease_ms)
            won = [n for n, ok in zip(names, await self.store.execute(b)) if ok]
            if not won:
                return None, self._rng.uniform(0.1, 1.0)
            slot = won[0]
            if won[1:]:
                await self.store.delete(*won[1:])
        if limits.rate is not None:
            window = int(now // limits.rate.per)
            key = self.keys.limit(type, f"rate:{window}")
            b = Batch().incr(key).expire(key, max(1, int(limits.rate.per * 2)))
            used = (await self.store.execute(b))[0]
            if used > limits.rate.count:
                if slot:
                    await self.store.delete(slot)
                next_window = (window + 1) * limits.rate.per
                return None, next_window - now + self._rng.uniform(0, limits.rate.per * 0.25)
        return slot, None

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
        self.limiter = Limiter(store, keys, lease_ms)
        self.clock = clock
        self.slots: dict[tuple[str, int], tuple[str, str]] = {}  # attempt -> (slot key, owner)

    async def before_process(self, ctx: Any) -> None:
        c: Claimed = ctx.task
        lim = self.limits.get(c.spec.type)
        if lim is None:
            return
        slot, wait = await self.limiter.acquire(c.spec.type, lim, self.clock(), c.worker)
        if wait is not None:
            raise Defer(wait, f"{c.spec.type} is at its concurrency or rate limit")
        if slot is not None:
            self.slots[(c.spec.id, c.attempt)] = (slot, c.worker)

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
