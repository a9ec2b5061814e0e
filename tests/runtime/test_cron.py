"""Cron: each fire enqueued exactly once however many schedulers run."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from nexq.queue import Inspector, NodeBroker
from nexq.runtime.cron import CronEntry, CronScheduler
from nexq.store.memory import MemoryStore
from tests.clocks import trio_clock


async def test_two_schedulers_fire_every_second_exactly_once(autojump_clock: MockClock) -> None:
    store = MemoryStore()
    clock = trio_clock(1_800_000_000.0)  # starts on a whole second
    entry = CronEntry.parse("tick", "* * * * * *", "noop", {"from": "cron"})
    a = CronScheduler(NodeBroker(store, clock=clock), [entry])
    b = CronScheduler(NodeBroker(store, clock=clock), [entry])
    with trio.move_on_after(10.0005):  # fires at +1 .. +10
        async with trio.open_nursery() as n:
            n.start_soon(a.run)
            n.start_soon(b.run)
    page = await Inspector(a.broker).list(limit=100)
    assert len(page.tasks) == 10
    assert a.fired + b.fired == 10
    assert {t.spec.payload["from"] for t in page.tasks} == {"cron"}
    [status] = await a.status()
    assert status["last_fire"] == 1_800_000_010 and status["next_fire"] == 1_800_000_011


async def test_cron_follows_its_time_zone() -> None:
    entry = CronEntry.parse("daily", "0 9 * * *", "noop", tz="America/New_York")
    # 2026-01-15 12:00 UTC is 07:00 in New York: next 09:00 there is 14:00 UTC.
    assert entry.next_after(1768478400.0) == 1768478400.0 + 2 * 3600


@pytest.mark.parametrize("schedule,tz", [("every minute", "UTC"), ("* * * * *", "Mars/Olympus")])
def test_bad_cron_entries_are_refused(schedule: str, tz: str) -> None:
    with pytest.raises(ValueError):
        CronEntry.parse("x", schedule, "noop", tz=tz)
