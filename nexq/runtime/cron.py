"""Cron entries: each fire time is enqueued exactly once, cluster-wide.

Every scheduler computes the next fire time ``t`` of each entry (croniter,
in the entry's time zone). At ``t`` they all race on
``SET cron:{name}:{t} NX``: the winner enqueues, the others skip. A
scheduler that was down does not replay missed fires; it resumes from now.

A fire is enqueued like any task (:mod:`nexq.runtime.task_types`: the
entry's options, else the type's handler defaults, here or published by the
workers). Workers publish their app's entries, so
:meth:`CronScheduler.status` lists those of every live worker too.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zoneinfo
from collections.abc import Sequence
from typing import Any

import attrs
import trio
from croniter import croniter

from ..codec import dumps, loads
from ..keys import MARKER_MS
from ..queue import QueueBackend, WebhookPolicy, make_spec
from ..task import RetryPolicy
from .boundary import Boundary
from .task_types import TaskTypes, build_request, conflicts

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
        options = dict(options or {})
        # Unknown or bad options fail here, at app.cron(), not at the first fire.
        make_spec(build_request(type, payload, options), time.time(), WebhookPolicy(allow_private=True))
        return cls(name, schedule, type, payload, tz, options)

    def to_json(self) -> dict[str, Any]:
        """What a worker publishes of the entry (its options as given, the
        retry policy as a dict)."""
        options = dict(self.options)
        if isinstance(options.get("retry"), RetryPolicy):
            options["retry"] = attrs.asdict(options["retry"])
        return {"name": self.name, "schedule": self.schedule, "timezone": self.tz, "type": self.type,
                "payload": self.payload, "options": options}

    @classmethod
    def from_json(cls, data: Any) -> CronEntry | None:
        """A published entry, to list (never to fire); None if not valid here."""
        try:
            entry = cls.parse(data["name"], data["schedule"], data["type"], data.get("payload"),
                              data.get("timezone", "UTC"))
        except (TypeError, KeyError, ValueError):
            return None
        options = data.get("options")
        return attrs.evolve(entry, options=dict(options) if isinstance(options, dict) else {})

    def next_after(self, t: float) -> float:
        """The first fire time strictly after unix time ``t``."""
        base = dt.datetime.fromtimestamp(t, zoneinfo.ZoneInfo(self.tz))
        return float(croniter(self.schedule, base).get_next(float))


class CronScheduler:
    """Fires a set of cron entries; any number may run at once."""

    def __init__(self, broker: QueueBackend, entries: Sequence[CronEntry],
                 types: TaskTypes | None = None) -> None:
        self.broker, self.entries = broker, list(entries)
        self.types = types or TaskTypes()
        self.fired = 0  # fires this scheduler won

    async def fire(self, entry: CronEntry, t: float) -> bool:
        """Enqueue ``entry``'s fire at ``t`` unless another scheduler did."""
        home = self.broker.home
        k = home.keys
        if not await home.store.set(k.cron_fire(entry.name, int(t)), b"1", nx=True, px=MARKER_MS):
            return False
        await self.broker.enqueue_many([await self.types.request(entry.type, entry.payload, entry.options)])
        await home.store.set(k.cron_last(entry.name), f"{t:.0f}")
        self.fired += 1
        return True

    async def run_entry(self, entry: CronEntry) -> None:
        clock = self.broker.clock
        boundary = Boundary(f"cron {entry.name}", log, first=0.1, cap=1.0)
        t = entry.next_after(clock())
        while True:
            wait = t - clock()
            if wait > 0:
                await trio.sleep(wait)
            async with boundary:  # a failed fire (store error, StoreFull) is logged and skipped
                await self.fire(entry, t)
            t = entry.next_after(max(t, clock() - 1))

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for e in self.entries:
                nursery.start_soon(self.run_entry, e)
            task_status.started()

    async def status(self) -> list[dict[str, Any]]:
        """Every entry of this process and of the live workers, by name, with
        its last and next fire. ``here``: this process fires it (when its
        scheduler runs); ``workers``: the live workers whose app has it;
        ``conflicts``: definitions of the same name that differ from the one
        shown (this process's, else the newest worker's)."""
        catalog = await self.types.catalog(fresh=True)
        published: dict[str, list[tuple[str, CronEntry]]] = {}
        for pub in catalog.publications:  # oldest registration first
            for data in pub.get("cron") or ():
                entry = CronEntry.from_json(data)
                if entry is not None:
                    published.setdefault(entry.name, []).append((str(pub.get("worker")), entry))
        shown: dict[str, CronEntry] = {e.name: e for e in self.entries}
        for name, entries in published.items():
            shown.setdefault(name, entries[-1][1])  # the newest worker's
        home = self.broker.home
        names = list(shown)
        lasts = await home.store.mget([home.keys.cron_last(n) for n in names]) if names else []
        now = self.broker.clock()
        here = {e.name for e in self.entries}
        return [
            {
                "name": e.name, "schedule": e.schedule, "timezone": e.tz, "type": e.type,
                "payload": e.payload, "last_fire": float(last) if last else None,
                "next_fire": e.next_after(now), "here": e.name in here,
                "workers": [w for w, _ in published.get(e.name, [])],
                "conflicts": conflicts(_normal(e), [(w, _normal(o)) for w, o in published.get(e.name, [])], "entry"),
            }
            for e, last in zip(shown.values(), lasts)
        ]


def _normal(entry: CronEntry) -> Any:
    """The entry as published (tuples are lists, the retry policy a dict)."""
    return loads(dumps(entry.to_json()))
