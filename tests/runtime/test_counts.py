"""Per-status counts equal what the listing shows: after delete, purge,
requeue, cancel and retention expiry (nexq.queue.counts)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import trio
from trio.testing import MockClock

from nexq.api.metrics import render
from nexq.config import Settings
from nexq.queue import Inspector, LaneReader, NodeBroker
from nexq.runtime.runtime import Runtime
from nexq.store import Store, open_store
from nexq.store.memory import MemoryStore
from tests.clocks import trio_clock

Q = "q"
SHOWN = ("pending", "scheduled", "succeeded", "dead", "cancelled")


async def counts(br: NodeBroker) -> dict[str, int]:
    [stats] = await Inspector(br).queue_stats([Q])
    return {s: stats[s] for s in SHOWN}


async def listed(br: NodeBroker) -> dict[str, int]:
    page = await Inspector(br).list(queue=Q, limit=1000)
    seen = Counter("scheduled" if t.status.value == "retrying" else t.status.value for t in page.tasks)
    return {s: seen.get(s, 0) for s in SHOWN}


async def assert_match(br: NodeBroker) -> dict[str, int]:
    shown = await counts(br)
    assert shown == await listed(br)
    return shown


async def finish(br: NodeBroker, *, ok: int = 0, dead: int = 0) -> list[str]:
    """Enqueue and run ``ok`` tasks that succeed and ``dead`` that fail for good."""
    ids = [(await br.enqueue("t", i, queue=Q, max_retries=0)).task_id for i in range(ok + dead)]
    claimed = await br.claim([Q], 1000, "w", LaneReader(br.store, br.keys))
    assert len(claimed) == ok + dead
    for i, c in enumerate(sorted(claimed, key=lambda c: ids.index(c.spec.id))):
        assert await (br.ack(c, "r") if i < ok else br.fail(c, RuntimeError("boom")))
    return ids


async def test_counts_match_the_listing_after_delete_purge_requeue_and_cancel(
        make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    ins = Inspector(br)
    ids = await finish(br, ok=3, dead=3)
    cancelled = [(await br.enqueue("t", queue=Q, delay=600)).task_id for _ in range(2)]
    scheduled = [(await br.enqueue("t", queue=Q, delay=600)).task_id for _ in range(3)]
    for tid in cancelled:
        assert await br.cancel(tid)
    assert await assert_match(br) == {"pending": 0, "scheduled": 3, "succeeded": 3, "dead": 3, "cancelled": 2}

    # Deleting tasks in each state takes them out of its count.
    for tid in (ids[0], ids[3], cancelled[0], scheduled[0]):
        assert await ins.delete(tid)
    assert await assert_match(br) == {"pending": 0, "scheduled": 2, "succeeded": 2, "dead": 2, "cancelled": 1}

    # A requeued dead task leaves the dead count for the pending one.
    assert await ins.requeue(ids[4])
    assert await assert_match(br) == {"pending": 1, "scheduled": 2, "succeeded": 2, "dead": 1, "cancelled": 1}

    # Purging the dead letters empties the dead count.
    assert await ins.purge_dead(Q) == 1
    assert await assert_match(br) == {"pending": 1, "scheduled": 2, "succeeded": 2, "dead": 0, "cancelled": 1}

    # A cancelled scheduled task leaves the scheduled count now, not at its due time.
    assert await br.cancel(scheduled[1])
    assert await assert_match(br) == {"pending": 1, "scheduled": 1, "succeeded": 2, "dead": 0, "cancelled": 2}

    # Two deletes of one task count it out once.
    async with trio.open_nursery() as n:
        for _ in range(2):
            n.start_soon(ins.delete, ids[1])
    assert await assert_match(br) == {"pending": 1, "scheduled": 1, "succeeded": 1, "dead": 0, "cancelled": 2}

    # Lifetime totals never go down (the scheduled task deleted was cancelled first).
    [stats] = await ins.queue_stats([Q])
    assert stats["totals"] == {"succeeded": 3, "dead": 3, "cancelled": 4, "failed_attempts": 3}


async def expire_and_compare(br: NodeBroker, retention: float, step: float, *, every_step: bool) -> None:
    """Finished tasks expire after the retention; their counts drop with them."""
    await finish(br, ok=2, dead=1)
    assert await br.cancel((await br.enqueue("t", queue=Q, delay=600)).task_id)
    assert await assert_match(br) == {"pending": 0, "scheduled": 0, "succeeded": 2, "dead": 1, "cancelled": 1}
    # Kept at least the retention, at most a count window (retention / 64, whole seconds) longer.
    window = max(1, math.ceil(retention / 64))
    start = trio.current_time()
    with trio.fail_after(retention + window + 5):
        while any((await listed(br)).values()):
            if every_step:
                await assert_match(br)
            await trio.sleep(step)  # time passing is the behaviour
    assert retention - 0.1 <= trio.current_time() - start <= retention + window + step + 0.5
    assert await assert_match(br) == dict.fromkeys(SHOWN, 0)
    [stats] = await Inspector(br).queue_stats([Q])
    assert stats["totals"] == {"succeeded": 2, "dead": 1, "cancelled": 1, "failed_attempts": 1}


async def test_counts_drop_when_finished_tasks_expire(autojump_clock: MockClock) -> None:
    # Embedded store, virtual time: counts and listing agree at every step.
    br = NodeBroker(MemoryStore(), clock=trio_clock(), retention=600.0)
    await expire_and_compare(br, 600.0, 2.5, every_step=True)


async def test_counts_drop_when_finished_tasks_expire_on_redis(resp_url: str, prefix: str) -> None:
    async with open_store(resp_url) as store:
        br = NodeBroker(store, namespace=prefix.rstrip(":"), retention=2.0)
        await expire_and_compare(br, 2.0, 0.1, every_step=False)


async def test_metrics_show_current_states_as_gauges_and_lifetime_totals_as_counters(
        store: Store, prefix: str) -> None:
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store)
    br = rt.broker
    assert isinstance(br, NodeBroker)
    ids = await finish(br, ok=2, dead=1)
    await Inspector(br).delete(ids[0])
    await Inspector(br).purge_dead(Q)
    text = await render(rt)
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert samples['nexq_tasks{queue="q",status="succeeded"}'] == "1"
    assert samples['nexq_tasks{queue="q",status="dead"}'] == "0"
    assert samples['nexq_tasks_processed_total{queue="q"}'] == "2"
    assert samples['nexq_tasks_dead_total{queue="q"}'] == "1"
    assert samples['nexq_attempts_failed_total{queue="q"}'] == "1"
    for name in ("nexq_tasks", "nexq_tasks_processed_total", "nexq_tasks_dead_total",
                 "nexq_tasks_cancelled_total", "nexq_attempts_failed_total"):
        kind = "gauge" if name == "nexq_tasks" else "counter"
        assert f"# TYPE {name} {kind}" in text
