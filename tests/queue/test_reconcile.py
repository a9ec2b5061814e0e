"""Reconciliation repairs every inconsistency a store that forgets writes leaves.

Each test makes the store forget exactly what a restart or an eviction could
drop (keys deleted behind Nexq's back), checks that nothing repairs it by
itself in time, then that a reconciliation round does, and the task ends.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio.testing import MockClock

from nexq.codec import encode_cur
from nexq.queue import Inspector, LaneReader, NodeBroker
from nexq.queue.reconcile import Reconciler
from nexq.store.memory import MemoryStore
from nexq.task import Outcome, Status
from tests.clocks import trio_clock

GRACE = 5.0


def broker(store: MemoryStore) -> NodeBroker:
    return NodeBroker(store, clock=trio_clock(), lease_ms=2000, bucket_ms=100)


async def forget_wheel(br: NodeBroker, ahead: float = 3600) -> None:
    """Drop every wheel bucket around now (what a restart may lose)."""
    wheel, now = br.ctx.wheel, br.clock()
    first, last = wheel.bucket_of(now - 60), wheel.bucket_of(now + ahead)
    for lo in range(first, last + 1, 1000):
        await br.store.delete(*[br.keys.wheel(b) for b in range(lo, min(last, lo + 999) + 1)])


async def forget_lane(br: NodeBroker, queue: str = "default", priority: int = 5) -> None:
    """Drop every slot of a lane (keeping its counters)."""
    tail = int(await br.store.get(br.keys.lane_tail(queue, priority)) or 0)
    if tail:
        await br.store.delete(*[br.keys.lane_slot(queue, priority, n) for n in range(1, tail + 1)])


async def claim(br: NodeBroker, worker: str = "w") -> list[Any]:
    return await br.claim(["default"], 10, worker, LaneReader(br.store, br.keys))


async def finish_all(br: NodeBroker, limit: float = 120) -> None:
    """Claim and ack until nothing is live (the scheduler's steps included)."""
    reader = LaneReader(br.store, br.keys)
    with trio.fail_after(limit):
        while True:
            await br.run_due()
            for c in await br.claim(["default"], 10, "survivor", reader):
                await br.ack(c, "ok")
            page = await Inspector(br).list(limit=100)
            if all(t.status.terminal for t in page.tasks):
                return
            await trio.sleep(0.1)


async def status(br: NodeBroker, tid: str) -> Status:
    t = await Inspector(br).get(tid)
    assert t is not None
    return t.status


async def test_a_pending_task_whose_lane_slot_was_lost_runs_again(autojump_clock: MockClock) -> None:
    br = broker(MemoryStore())
    rec = Reconciler(br, grace=GRACE)
    e = await br.enqueue("t", 1)
    await forget_lane(br)
    report = await rec.run(full=True)
    assert report.repairs == 0  # too young to tell from a producer still writing
    await trio.sleep(GRACE + 1)
    assert await claim(br) == []  # nothing repairs it by itself
    report = await rec.run(full=True)
    assert report.lost_attempts == 1
    [c] = await claim(br)
    assert (c.spec.id, c.attempt) == (e.task_id, 2)
    assert await br.ack(c, "done")
    t = await Inspector(br).get(e.task_id)
    assert t is not None and t.status is Status.SUCCEEDED
    # The forgotten attempt is on record as lost, and did not use a retry.
    assert [a.outcome for a in t.attempts] == [Outcome.LOST, Outcome.SUCCEEDED]
    assert t.attempts[0].error_type == "Reconciled"


async def test_a_claimed_attempt_whose_lease_and_check_were_lost_is_retried(autojump_clock: MockClock) -> None:
    br = broker(MemoryStore())
    rec = Reconciler(br, grace=GRACE)
    e = await br.enqueue("t", 1, max_retries=0)
    [zombie] = await claim(br, "w1")
    await br.store.delete(br.keys.lease(e.task_id, 1))  # the lease and its wheel check, forgotten
    await forget_wheel(br)
    await trio.sleep(GRACE + 3)
    await br.run_due()
    assert await status(br, e.task_id) is Status.PENDING  # stuck: no slot, no lease, no outcome
    assert (await rec.run(full=True)).lost_attempts == 1
    assert not await br.ack(zombie, "late")  # the forgotten run cannot record over the repair
    await finish_all(br)
    assert await status(br, e.task_id) is Status.SUCCEEDED  # max_retries=0 and still not dead


async def test_a_delayed_task_whose_wheel_entry_was_lost_runs_once_due(autojump_clock: MockClock) -> None:
    br = broker(MemoryStore())
    rec = Reconciler(br, grace=GRACE)
    e = await br.enqueue("t", 1, delay=30)
    await forget_wheel(br)
    await trio.sleep(20)
    assert (await rec.run(full=True)).repairs == 0  # not due yet: never early
    await trio.sleep(20 + GRACE)
    await br.run_due()
    assert await claim(br) == []
    assert (await rec.run(full=True)).repromoted == 1
    assert (await rec.run(full=True)).repromoted == 0  # once
    [c] = await claim(br)
    assert c.spec.id == e.task_id and c.attempt == 1
    assert br.clock() >= c.spec.run_at  # type: ignore[operator]


async def test_an_outcome_whose_follow_up_and_check_were_lost_is_followed_up(autojump_clock: MockClock) -> None:
    br = broker(MemoryStore())
    rec = Reconciler(br, grace=GRACE)
    e = await br.enqueue("t", 1, max_retries=0)
    [c] = await claim(br)
    cur_before = await br.store.get(br.keys.cur(e.task_id))
    assert await br.ack(c, 42)
    # The store kept the decision but lost the terminal cur and the check.
    await br.store.set(br.keys.cur(e.task_id), cur_before or b"")
    await forget_wheel(br)
    await trio.sleep(30)
    await br.run_due()
    assert await status(br, e.task_id) is Status.SUCCEEDED  # the outcome shows through...
    raw = await br.store.get(br.keys.cur(e.task_id))
    assert raw == cur_before  # ...but cur never followed it
    assert (await rec.run(full=True)).followed_up == 1
    raw = await br.store.get(br.keys.cur(e.task_id))
    assert raw is not None and b"succeeded" in raw


async def test_a_lost_cur_is_rebuilt_and_a_lost_spec_is_counted(autojump_clock: MockClock) -> None:
    br = broker(MemoryStore())
    rec = Reconciler(br, grace=GRACE)
    a = await br.enqueue("t", "cur goes")
    b = await br.enqueue("t", "spec goes")
    await br.store.delete(br.keys.cur(a.task_id))
    await forget_lane(br)
    await br.store.delete(br.keys.spec(b.task_id))
    report = await rec.run(full=True)
    assert (report.rebuilt, report.lost_tasks) == (1, 1)
    assert await br.store.get(br.keys.cur(b.task_id)) is None
    await finish_all(br)
    assert await status(br, a.task_id) is Status.SUCCEEDED


async def test_a_lane_whose_tail_fell_behind_its_head_takes_work_again(autojump_clock: MockClock) -> None:
    br = broker(MemoryStore())
    rec = Reconciler(br, grace=GRACE)
    for i in range(3):
        await br.enqueue("t", i)
    for c in await claim(br):
        await br.ack(c)
    e = await br.enqueue("t", "after")  # slot 4
    # A restart kept head (3) but lost the tail's last writes and the slot.
    await br.store.set(br.keys.lane_tail("default", 5), 1)
    await br.store.delete(br.keys.lane_slot("default", 5, 4))
    await trio.sleep(GRACE + 1)
    assert await claim(br) == []
    report = await rec.run(full=True)
    assert report.lanes_fixed == 1 and report.lost_attempts == 1
    assert int(await br.store.get(br.keys.lane_tail("default", 5)) or 0) > 3
    [c] = await claim(br)
    assert c.spec.id == e.task_id


async def test_a_waiting_child_whose_release_was_lost_is_released(autojump_clock: MockClock) -> None:
    br = broker(MemoryStore())
    rec = Reconciler(br, grace=GRACE)
    parent = await br.enqueue("p", 1)
    child = await br.enqueue("c", 2, depends_on=[parent.task_id])
    [c] = await claim(br)
    await br.ack(c)
    # The release happened (its marker survived) but cur and the slot did not.
    await br.store.set(br.keys.cur(child.task_id), encode_cur(1, "waiting", br.clock()))
    await forget_lane(br)
    await trio.sleep(GRACE + 1)
    assert (await rec.run(full=True)).released == 1
    [c] = await claim(br)
    assert c.spec.id == child.task_id


async def test_rounds_rotate_through_the_index_within_their_budget(autojump_clock: MockClock) -> None:
    br = broker(MemoryStore())
    rec = Reconciler(br, grace=GRACE, budget=10)
    ids = [(await br.enqueue("t", i)).task_id for i in range(25)]
    await forget_lane(br)
    await trio.sleep(GRACE + 1)
    repaired = [(await rec.run()).lost_attempts for _ in range(3)]
    assert repaired == [10, 10, 5]
    reader, seen, empty = LaneReader(br.store, br.keys), set(), 0
    while empty < 2:  # a round stalled behind holes (the producer's reserved slots too) peeks further next
        got = await br.claim(["default"], 50, "w", reader)
        seen |= {c.spec.id for c in got}
        empty = 0 if got else empty + 1
    assert seen == set(ids)


@pytest.mark.parametrize("kind", ["memory"])
async def test_a_healthy_queue_is_left_alone(kind: str, autojump_clock: MockClock) -> None:
    br = NodeBroker(MemoryStore(), clock=trio_clock(), lease_ms=30_000)
    rec = Reconciler(br, grace=GRACE)
    waiting = await br.enqueue("t", "in the lane")
    running = await br.enqueue("t", "running")
    await br.enqueue("t", 1, delay=3600)
    reader = LaneReader(br.store, br.keys)
    [c] = await br.claim(["default"], 1, "w", reader)
    assert c.spec.id == waiting.task_id
    await trio.sleep(GRACE + 1)
    hb = await br.heartbeat([c])
    assert hb == [(True, False)]
    report = await rec.run(full=True)
    assert report.repairs == 0 and report.checked == 3
    assert running.task_id in {x.spec.id for x in await br.claim(["default"], 5, "w", reader)}


async def test_a_seq_counter_set_back_by_the_store_overwrites_no_task(autojump_clock: MockClock) -> None:
    br = broker(MemoryStore())
    rec = Reconciler(br, grace=GRACE)
    old = [(await br.enqueue("t", i)).task_id for i in range(5)]
    await br.store.set(br.keys.seq, 2)  # a restart lost the last three increments
    new = (await br.enqueue("t", "new")).task_id
    ids = await br.store.mget([br.keys.index(n) for n in range(1, 7)])
    assert [x.decode() for x in ids if x is not None][:5] == old  # nothing overwritten
    t = await Inspector(br).get(new)
    assert t is not None and await br.store.get(br.keys.index(t.spec.seq)) == new.encode()
    await br.store.set(br.keys.seq, 1)
    report = await rec.run(full=True)
    assert report.counters_fixed == 1
    assert int(await br.store.get(br.keys.seq) or 0) >= t.spec.seq


async def test_garbage_behind_nexqs_back_costs_only_its_own_entry(autojump_clock: MockClock) -> None:
    br = broker(MemoryStore())
    rec = Reconciler(br, grace=GRACE)
    bad = await br.enqueue("t", "garbled")
    good = await br.enqueue("t", "lost slot")
    await forget_lane(br)
    await br.store.set(br.keys.lane_slot("default", 5, 1), b"no-bar-here")  # a slot no decoder reads
    await br.store.set(br.keys.spec(bad.task_id), b"{not json")
    await trio.sleep(GRACE + 1)
    report = await rec.run(full=True)  # does not raise
    assert report.lost_attempts == 1
    [c] = await claim(br)
    assert c.spec.id == good.task_id


async def test_one_partial_round_per_interval_for_the_whole_deployment(autojump_clock: MockClock) -> None:
    store = MemoryStore()
    a, b = broker(store), broker(store)
    rec_a, rec_b = Reconciler(a, grace=GRACE, budget=10), Reconciler(b, grace=GRACE, budget=10)
    for i in range(20):
        await a.enqueue("t", i)
    await forget_lane(a)
    await trio.sleep(GRACE + 1)
    first = (await rec_a.run(turn_ms=30_000)).lost_attempts
    second = (await rec_b.run(turn_ms=30_000)).lost_attempts  # a's turn: b does nothing
    assert (first, second) == (10, 0)
    await trio.sleep(31)
    assert (await rec_b.run(turn_ms=30_000)).lost_attempts == 10  # and takes over where a stopped
