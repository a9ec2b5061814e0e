"""Cluster-wide concurrency and rate limits per task type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from nexq.app import Nexq
from nexq.config import Settings
from nexq.runtime.limits import RateLimit
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.worker import Worker
from nexq.store import Store
from nexq.store.memory import MemoryStore
from nexq.task import Status
from tests.clocks import trio_clock


async def test_concurrency_limit_holds_across_workers(store: Store, prefix: str) -> None:
    app = Nexq()
    running, peak = 0, 0

    @app.task("mail", concurrency_limit=2)
    async def mail(payload: Any) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(0.1)  # the work: long enough for the others to want a turn
        running -= 1

    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store, app=app)
    app.bind(rt)
    async with trio.open_nursery() as n:
        await n.start(Scheduler(rt.broker).run)
        for _ in range(2):  # two workers sharing the limit through the store
            await n.start(Worker(rt, app, concurrency=5).run)
        handles = await app.enqueue_many([("mail", i) for i in range(12)])
        with trio.fail_after(60):
            for h in handles:
                await h.result()
        n.cancel_scope.cancel()
    assert peak == 2
    t = await handles[-1].info()
    assert t.status is Status.SUCCEEDED


async def test_rate_limit_spreads_tasks_over_windows_on_both_stores(store: Store, prefix: str) -> None:
    await check_rate_limit(lambda app: Runtime.build(Settings(namespace=prefix.rstrip(":")), store, app=app),
                           count=12)


async def test_rate_limit_spreads_tasks_over_windows(autojump_clock: MockClock) -> None:
    await check_rate_limit(lambda app: Runtime.build(Settings(), MemoryStore(), app=app, clock=trio_clock()),
                           count=15)


async def check_rate_limit(build: Callable[[Nexq], Runtime], count: int) -> None:
    app = Nexq()
    starts: list[float] = []

    @app.task("api_call", rate_limit="5/s")
    async def api_call(payload: Any) -> None:
        starts.append(rt.broker.clock())

    rt = build(app)
    app.bind(rt)
    async with trio.open_nursery() as n:
        await n.start(Scheduler(rt.broker).run)
        await n.start(Worker(rt, app, concurrency=10).run)
        handles = await app.enqueue_many([("api_call", i) for i in range(count)])
        with trio.fail_after(60):
            for h in handles:
                await h.result()
        n.cancel_scope.cancel()
    per_second: dict[int, int] = {}
    for t in starts:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    assert len(starts) == count and max(per_second.values()) <= 5 and len(per_second) >= 3
    t = await handles[-1].info()
    assert t.status is Status.SUCCEEDED  # deferrals did not use up its retries


@pytest.mark.parametrize("text,count,per", [("100/m", 100, 60), ("10/s", 10, 1), ("5/10s", 5, 10), ("1000/h", 1000, 3600)])
def test_rate_limits_parse(text: str, count: int, per: float) -> None:
    assert RateLimit.parse(text) == RateLimit(count, per)


@pytest.mark.parametrize("text", ["100", "x/m", "0/s", "10/fortnight"])
def test_bad_rate_limits_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit.parse(text)
