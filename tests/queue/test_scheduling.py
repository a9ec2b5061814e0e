"""The time wheel: due order, backoff, catch-up, several schedulers, retention."""

from __future__ import annotations

import random
from collections.abc import Callable

import trio
from trio.testing import MockClock

from nexq.queue import EnqueueRequest, Inspector, LaneReader, NodeBroker
from nexq.queue.lanes import PRIORITIES
from nexq.runtime.scheduler import Scheduler
from nexq.store.memory import MemoryStore
from nexq.task import RetryPolicy, Status
from tests.clocks import trio_clock


async def claimer(br: NodeBroker, seen: list, stop_after: int, interval: float = 0.01) -> None:  # type: ignore[type-arg]
    reader = LaneReader(br.store, br.keys)
    while len(seen) < stop_after:
        for c in await br.claim(["default"], 100, "w", reader):
            seen.append((br.clock(), c))
        await trio.sleep(interval)


async def schedule_and_claim(brokers: list[NodeBroker], n: int, limit: float) -> list:  # type: ignore[type-arg]
    """Run a Scheduler per broker and claim from the last one until ``n``
    attempts started (or ``limit`` seconds pass); returns (start time, claimed)."""
    seen: list = []  # type: ignore[type-arg]
    async with trio.open_nursery() as nursery:
        for br in brokers:
            nursery.start_soon(Scheduler(br).run)
        with trio.fail_after(limit):
            await claimer(brokers[-1], seen, n)
        nursery.cancel_scope.cancel()
    return seen


async def test_scheduled_tasks_start_in_due_order_never_early(autojump_clock: MockClock) -> None:
    br = NodeBroker(MemoryStore(), clock=trio_clock(), bucket_ms=100)
    rng = random.Random(7)
    reqs = [EnqueueRequest("t", i, delay=rng.uniform(0.05, 5)) for i in range(300)]
    await br.enqueue_many(reqs)
    seen = await schedule_and_claim([br], 300, 30)
    assert len(seen) == 300
    for t, c in seen:
        assert t >= c.spec.run_at  # never early
        assert t - c.spec.run_at < 0.25  # late by at most ~2 buckets + a poll
    buckets = [br.ctx.wheel.bucket_of(c.spec.run_at) for _, c in seen]
    assert buckets == sorted(buckets)


async def test_retry_delays_follow_jittered_exponential_backoff(autojump_clock: MockClock) -> None:
    """Each failure schedules its retry after a backoff drawn under the capped
    exponential ceiling, and the retry starts no earlier than that (nor much later)."""
    policy = RetryPolicy(base=1.0, cap=8.0)
    br = NodeBroker(MemoryStore(), clock=trio_clock(), bucket_ms=50)
    e = await br.enqueue("t", None, max_retries=6, retry=policy)
    ins = Inspector(br)
    waits: list[float] = []  # the backoff each failure scheduled (cur keeps ms)
    starts: list[float] = []  # when the retry after each failure started, from that failure
    reader = LaneReader(br.store, br.keys)
    saved = random.getstate()
    random.seed(11)  # RetryPolicy.delay draws from the module's generator: the same draws each run
    try:
        async with trio.open_nursery() as n:
            n.start_soon(Scheduler(br).run)
            failed_at = 0.0
            with trio.fail_after(120):
                while len(starts) < 6:
                    for c in await br.claim(["default"], 1, "w", reader):
                        if c.attempt > 1:
                            starts.append(br.clock() - failed_at)
                        await br.fail(c, RuntimeError("x"))
                        failed_at = br.clock()
                        if c.attempt <= 6:  # a retry is left: this failure scheduled it
                            t = await ins.get(e.task_id)
                            assert t is not None and t.status is Status.RETRYING and t.scheduled_at is not None, t
                            waits.append(t.scheduled_at - failed_at)
                    await trio.sleep(0.005)
            n.cancel_scope.cancel()
    finally:
        random.setstate(saved)
    for n_failed, (wait, start) in enumerate(zip(waits, starts, strict=True), start=1):
        ceiling = min(8.0, 2 ** (n_failed - 1))
        assert 0.001 < wait <= ceiling + 0.001, (n_failed, wait)  # a real backoff, capped
        assert wait - 0.001 <= start <= wait + 0.15, (n_failed, wait, start)  # never early


def test_backoff_is_full_jitter_under_a_capped_exponential() -> None:
    policy = RetryPolicy(base=0.5, cap=10.0)
    rng = random.Random(1)
    for attempt in range(1, 12):
        samples = [policy.delay(attempt, rng) for _ in range(400)]
        ceiling = min(10.0, 0.5 * 2 ** (attempt - 1))
        assert max(samples) <= ceiling and min(samples) >= 0
        assert max(samples) > 0.8 * ceiling and min(samples) < 0.2 * ceiling  # spread, not fixed


async def test_scheduler_catches_up_after_downtime(autojump_clock: MockClock) -> None:
    br = NodeBroker(MemoryStore(), clock=trio_clock(), bucket_ms=100)
    await br.enqueue_many([EnqueueRequest("t", i, delay=1 + i) for i in range(100)])
    await trio.sleep(3600)  # no scheduler for an hour
    seen = await schedule_and_claim([br], 100, 60)
    assert sorted(c.spec.payload for _, c in seen) == list(range(100))


async def test_sweep_repairs_a_bucket_its_scheduler_abandoned(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker(bucket_ms=50)
    e = await br.enqueue("t", "x", delay=0.05)
    task = await Inspector(br).get(e.task_id)
    assert task is not None and task.spec.run_at is not None
    due = br.ctx.wheel.bucket_of(task.spec.run_at)
    with trio.fail_after(5):  # a "scheduler" claims buckets up to the task's...
        while not (claimed := await br.ctx.wheel.claim_ended()) or claimed[-1] < due:
            await trio.sleep(0.01)
    # ...and dies here, its buckets unread
    assert await br.sweep(older_than=0) >= 1
    [c] = await br.claim(["default"], 10, "w", LaneReader(br.store, br.keys))
    assert c.spec.payload == "x"


async def test_three_schedulers_move_every_due_task_exactly_once(make_broker: Callable[..., NodeBroker]) -> None:
    brokers = [make_broker(bucket_ms=20) for _ in range(3)]
    n_tasks = 600
    start = brokers[0].clock()
    await brokers[0].enqueue_many(
        [EnqueueRequest("t", i, delay=0.2 + (i % 100) / 100) for i in range(n_tasks)]
    )
    seen = await schedule_and_claim(brokers, n_tasks, 30)
    assert sorted(c.spec.payload for _, c in seen) == list(range(n_tasks))
    assert all(t >= c.spec.run_at for t, c in seen)
    # A double move would have used a second lane slot: count them all.
    k = brokers[0].keys
    tails = await brokers[0].store.mget([k.lane("default", p) + ":tail" for p in PRIORITIES])
    assert sum(int(t or 0) for t in tails) == n_tasks
    assert brokers[0].clock() - start < 30


async def test_every_key_of_a_finished_task_expires(resp_url, prefix, checker) -> None:  # type: ignore[no-untyped-def]
    from nexq.store import open_store

    async with open_store(resp_url) as store:
        br = NodeBroker(store, namespace=prefix.rstrip(":"), retention=3600)
        ok = await br.enqueue("t", unique_key="u1")
        dead = await br.enqueue("t", max_retries=0)
        cancelled = await br.enqueue("t", delay=60)
        reader = LaneReader(store, br.keys)
        for c in await br.claim(["default"], 10, "w", reader):
            if c.spec.id == ok.task_id:
                await br.progress(c, 1.0, "done")
                await br.ack(c, "r")
            else:
                await br.fail(c, RuntimeError("x"))
        await br.cancel(cancelled.task_id)
        ins = Inspector(br)
        assert [(await ins.get(t.task_id)).status for t in (ok, dead, cancelled)] == [
            Status.SUCCEEDED, Status.DEAD, Status.CANCELLED]
    for tid in (ok.task_id, dead.task_id, cancelled.task_id):
        keys = [k for k in checker.keys(f"{prefix}*{tid}*")]
        assert keys, tid
        for key in keys:
            ttl = checker.ttl(key)
            assert 0 < ttl <= 86_400, (key, ttl)
    assert checker.get(f"{prefix}uniq:u1") is None
