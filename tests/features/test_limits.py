"""Cluster-wide concurrency and rate limits per task type."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from nexq.app import Nexq
from nexq.config import Settings
from nexq.keys import Keys
from nexq.runtime.gcra import Gcra
from nexq.runtime.limits import RateLimit
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.worker import Worker
from nexq.store import Store
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


# Real time on a RESP server: a start is recorded a round trip after the
# limiter decided it, and those round trips differ by up to a few ms, so the
# windows there are this much shorter than the limit's. Under autojump they
# are exact but for the resolution of the times (the limiter counts whole
# microseconds; floats near the clock's 1.8e9 s resolve 2.4e-7 s).
DECISION_JITTER = 0.02
FLOAT_EPS = 1e-5


@pytest.fixture
def store_clock(request: pytest.FixtureRequest) -> MockClock | None:
    """Autojump on the embedded store; real time (no mock clock) over RESP."""
    return MockClock(autojump_threshold=0) if request.node.callspec.params.get("store") == "memory" else None


def most_in_any_window(starts: Sequence[float], width: float) -> int:
    """The most starts in any window [t, t + width): a fullest window begins at a start."""
    s = sorted(starts)
    return max(bisect_left(s, t + width) - i for i, t in enumerate(s))


async def limited_starts(store: Store, prefix: str, rate: str, count: int) -> list[float]:
    """Start times of ``count`` tasks limited to ``rate``, run by two workers
    in two runtimes (two processes' worth of limiters) sharing ``store``."""
    app = Nexq()
    starts: list[float] = []
    # Tasks arrive at an arbitrary moment, not at the start of a second.
    clock = trio_clock(offset=1_800_000_000.6) if store.kind == "memory" else time.time

    @app.task("api_call", rate_limit=rate)
    async def api_call(payload: Any) -> None:
        starts.append(clock())

    rts = [Runtime.build(Settings(namespace=prefix.rstrip(":")), store, app=app, clock=clock) for _ in range(2)]
    app.bind(rts[0])
    async with trio.open_nursery() as n:
        await n.start(Scheduler(rts[0].broker).run)
        for rt in rts:
            await n.start(Worker(rt, app, concurrency=10).run)
        handles = await app.enqueue_many([("api_call", i) for i in range(count)])
        with trio.fail_after(60):
            for h in handles:
                await h.result()  # succeeded: being deferred used up none of its retries
        n.cancel_scope.cancel()
    assert len(starts) == count
    return sorted(starts)


async def test_rate_limit_is_smooth_in_every_sliding_window(store: Store, store_clock: MockClock | None,
                                                            prefix: str) -> None:
    starts = await limited_starts(store, prefix, "5/s", 16)
    width = 1.0 - (FLOAT_EPS if store.kind == "memory" else DECISION_JITTER)
    assert most_in_any_window(starts, width) <= 5, [round(t - starts[0], 3) for t in starts]
    # ... and it is a rate limit, not a stall: 16 starts at 5/s take about 3 s.
    assert starts[-1] - starts[0] < 4.5


async def test_a_burst_starts_at_once_then_the_rest_are_spaced(store: Store, store_clock: MockClock | None,
                                                               prefix: str) -> None:
    starts = await limited_starts(store, prefix, "10/s;burst=5", 12)
    rel = [round(t - starts[0], 3) for t in starts]
    at_once = 0.0 if store.kind == "memory" else 0.05
    assert starts[4] - starts[0] <= at_once, rel  # the burst: five at once
    # Then one per 100 ms on the limit's schedule: never ahead of it, and not
    # bunched at window starts. (In real time a start that ran late does not
    # move the schedule: within the burst allowance the next one may catch up.)
    late = FLOAT_EPS if store.kind == "memory" else 0.08
    for i in range(5, len(starts)):
        due = (i - 4) * 0.1
        assert due - (FLOAT_EPS if store.kind == "memory" else DECISION_JITTER) <= starts[i] - starts[0], rel
        assert starts[i] - starts[0] <= due + late, rel
    if store.kind == "memory":
        assert all(abs(b - a - 0.1) < FLOAT_EPS for a, b in pairwise(starts[4:])), rel


async def test_racing_limiters_never_share_an_interval(store: Store, store_clock: MockClock | None,
                                                       prefix: str) -> None:
    # Eight processes' limiters (each with its own hints), three takers each,
    # all racing for the versions of one limit: the compare-and-set on each
    # version lets exactly one start through per interval.
    clock = trio_clock(offset=1_800_000_000.6) if store.kind == "memory" else time.time
    rate, granted = RateLimit.parse("20/s"), list[float]()
    limiters = [Gcra(store, Keys(prefix.rstrip(":")), clock) for _ in range(8)]

    async def taker(gcra: Gcra) -> None:
        while clock() < end:
            wait = await gcra.take("racy", rate)
            if wait:
                await trio.sleep(wait)
            else:
                granted.append(clock())

    end = clock() + 1.5
    async with trio.open_nursery() as n:
        for gcra in limiters * 3:
            n.start_soon(taker, gcra)
    granted.sort()
    width = 1.0 - (FLOAT_EPS if store.kind == "memory" else DECISION_JITTER)
    assert most_in_any_window(granted, width) <= 20
    assert len(granted) >= 25  # and the limit is used: 1.5 s at 20/s is 30 starts


@pytest.mark.parametrize("text,limit", [
    ("100/m", RateLimit(100, 60)), ("10/s", RateLimit(10, 1)), ("5/10s", RateLimit(5, 10)),
    ("1000/h", RateLimit(1000, 3600)), ("100/m;burst=10", RateLimit(100, 60, 10)),
    ("10/s; burst = 5", RateLimit(10, 1, 5)),
])
def test_rate_limits_parse(text: str, limit: RateLimit) -> None:
    assert RateLimit.parse(text) == limit
    assert limit.burst >= 1 and RateLimit.parse(text.split(";")[0]).burst == 1


@pytest.mark.parametrize("text", ["100", "x/m", "0/s", "10/fortnight", "10/s;burst=0", "10/s;burst=x",
                                  "10/s;bursts=2", "10/s;"])
def test_bad_rate_limits_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit.parse(text)
