"""Cron entries: each fire time is enqueued exactly once, cluster-wide.

Every scheduler computes the next fire time ``t`` of each entry (croniter,
in the entry's time zone). At ``t`` they all race on
``SET cron:{name}:{t} NX``: the winner enqueues, the others skip. A
scheduler that was down does not replay missed fires; it resumes from now.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from typing import Any

import attrs
import trio
from croniter import croniter

from ..errors import StoreUnavailable
from ..keys import MARKER_MS
from ..queue import EnqueueRequest, QueueBackend

log = logging.getLogger("nexq.cron")


@attrs.frozen
class CronEntry:
    name: str
    schedule: str
    type: str
    payload: Any = None
    tz: str = "UTC"
    options: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def parse(cls, name: str, schedule: str, type: str, payload: Any = None, tz: str = "UTC",
              options: dict[str, Any] | None = None) -> CronEntry:
        """Validate; raises ValueError naming a bad schedule or time zone."""
        if not name or ":" in name:
            raise ValueError(f"cron name {name!r} must be non-empty, without ':'")
        if not croniter.is_valid(schedule):
            raise ValueError(f"cron schedule {schedule!r} is not a valid cron expression")
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {tz!r}") from None
        return cls(name, schedule, type, payload, tz, dict(options or {}))

    def next_after(self, t: float) -> float:
        """The first fire time strictly after unix time ``t``."""
        base = dt.datetime.fromtimestamp(t, zoneinfo.ZoneInfo(self.tz))
        return float(croniter(self.schedule, base).get_next(float))


class CronScheduler:
    """Fires a set of cron entries; any number may run at once."""

    def __init__(self, broker: QueueBackend, entries: list[CronEntry]) -> None:
        self.broker, self.entries = broker, entries
        self.fired = 0  # fires this scheduler won

    async def fire(self, entry: CronEntry, t: float) -> bool:
        """Enqueue ``entry``'s fire at ``t`` unless another scheduler did."""
        home = self.broker.home
        k = home.keys
        if not await home.store.set(k.cron_fire(entry.name, int(t)), b"1", nx=True, px=MARKER_MS):
            return False
        await self.broker.enqueue_many([EnqueueRequest(entry.type, entry.payload, **entry.options)])
        await home.store.set(k.cron_last(entry.name), f"{t:.0f}")
        self.fired += 1
        return True

    async def run_entry(self, entry: CronEntry) -> None:
        clock = self.broker.clock
        t = entry.next_after(clock())
        while True:
            wait = t - clock()
            if wait > 0:
                await trio.sleep(wait)
            try:
                await self.fire(entry, t)
            except StoreUnavailable as exc:
                log.warning("cron %s: store unavailable at %s: %s", entry.name, t, exc)
            t = entry.next_after(max(t, clock() - 1))

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for e in self.entries:
                nursery.start_soon(self.run_entry, e)
            task_status.started()

    async def status(self) -> list[dict[str, Any]]:
        home = self.broker.home
        k = home.keys
        lasts = await home.store.mget([k.cron_last(e.name) for e in self.entries]) if self.entries else []
        now = self.broker.clock()
        return [
            {
                "name": e.name, "schedule": e.schedule, "timezone": e.tz, "type": e.type,
                "payload": e.payload, "last_fire": float(last) if last else None,
                "next_fire": e.next_after(now),
            }
            for e, last in zip(self.entries, lasts)
        ]
