"""A process dying between two steps of a protocol loses nothing.

Each test stops a protocol half-way, exactly where a crash would, then lets
the surviving agents (other consumers, the scheduler) repair it.
"""

from __future__ import annotations

import trio
from trio.testing import MockClock

from nexq.codec import encode_attempt
from nexq.queue import Inspector, LaneReader, NodeBroker
from nexq.runtime.scheduler import Scheduler
from nexq.store.memory import MemoryStore
from nexq.task import Attempt, Outcome, Status
from tests.clocks import trio_clock


def broker(store: MemoryStore) -> NodeBroker:
    return NodeBroker(store, clock=trio_clock(), lease_ms=2000, bucket_ms=100)


async def claim_until(br: NodeBroker, limit: float = 60) -> list:  # type: ignore[type-arg]
    reader = LaneReader(br.store, br.keys)
    with trio.fail_after(limit):
        while not (got := await br.claim(["default"], 10, "survivor", reader)):
            await trio.sleep(0.05)
    return got


async def test_consumer_dying_after_lease_before_settling_loses_nothing(autojump_clock: MockClock) -> None:
    store = MemoryStore()
    br = broker(store)
    e = await br.enqueue("t", "payload")
    # The dying consumer peeks and leases, then stops before settling the
    # slot and scheduling its lease check.
    reader = LaneReader(store, br.keys)
    paused, states = await __import__("nexq.queue.lanes", fromlist=["read_lanes"]).read_lanes(
        store, br.keys, ["default"])
    plan = [(lane, st.head, st.tail - st.head) for lane, st in states.items() if st.tail > st.head]
    assert [s.ref.task_id for s in await reader.peek(plan) if s.ref is not None] == [e.task_id]
    assert await store.set(br.keys.lease(e.task_id, 1), "dead-worker|0", nx=True, px=2000)
    async with trio.open_nursery() as n:
        n.start_soon(Scheduler(br).run)
        [c] = await claim_until(br)  # possible once the dead lease expires
        n.cancel_scope.cancel()
    assert c.spec.id == e.task_id and c.attempt == 1
    assert await br.ack(c, "ok")
    assert (await Inspector(br).get(e.task_id)).status is Status.SUCCEEDED


async def test_winner_dying_before_follow_up_is_repaired(autojump_clock: MockClock) -> None:
    store = MemoryStore()
    br = broker(store)
    e = await br.enqueue("t", None, max_retries=2)
    [c] = await claim_until(br)
    # The worker decides "failed" and dies before writing the next attempt.
    rec = Attempt(1, Outcome.FAILED, c.worker, c.started_at, br.clock(), "RuntimeError", "x")
    assert await store.set(br.keys.fin(e.task_id, 1), encode_attempt(rec, retry_in=0.5), nx=True)
    await store.delete(br.keys.lease(e.task_id, 1))
    ins = Inspector(br)
    assert (await ins.get(e.task_id)).status is Status.RETRYING
    async with trio.open_nursery() as n:
        n.start_soon(Scheduler(br).run)
        [again] = await claim_until(br)  # the lease check redoes the follow-up
        n.cancel_scope.cancel()
    assert again.attempt == 2
    t = await ins.get(e.task_id)
    assert t.status is Status.RUNNING and t.attempts[0].error_message == "x"


async def test_cancel_dying_before_follow_up_still_ends_terminal(autojump_clock: MockClock) -> None:
    store = MemoryStore()
    br = broker(store)
    e = await br.enqueue("t", None)
    rec = Attempt(1, Outcome.CANCELLED, None, None, br.clock(), "Cancelled", "cancelled on request")
    # Cancel's first step schedules its follow-up check, then decides; it dies then.
    from nexq.queue.outcomes import FOLLOW_UP_CHECK
    from nexq.queue.wheel import Entry
    from nexq.store import Batch

    b = Batch()
    br.ctx.wheel.add_ops(b, [Entry("L", e.task_id, 1, br.clock() + FOLLOW_UP_CHECK)])
    b.set(br.keys.fin(e.task_id, 1), encode_attempt(rec), nx=True)
    await store.execute(b)
    async with trio.open_nursery() as n:
        n.start_soon(Scheduler(br).run)
        with trio.fail_after(FOLLOW_UP_CHECK + 60):  # the follow-up check ends it terminal
            while await store.pttl(br.keys.cur(e.task_id)) <= 0:
                await trio.sleep(0.05)
        n.cancel_scope.cancel()
    assert await store.pttl(br.keys.cur(e.task_id)) > 0  # terminal: it will expire
    assert (await Inspector(br).get(e.task_id)).status is Status.CANCELLED
