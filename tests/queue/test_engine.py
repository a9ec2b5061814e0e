"""Queue engine contract: MemoryStore and RESP (Redis / real Pogocache)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from nexq.queue import EnqueueRequest, Inspector, LaneReader, NodeBroker
from nexq.store import Store
from nexq.task import Status


async def claim_all(br: NodeBroker, queues: list[str] = ["default"], n: int = 100) -> list:  # noqa: B006
    return await br.claim(queues, n, "w1", LaneReader(br.store, br.keys))


async def race_with_reaper(br: NodeBroker, action: Callable[..., Any]) -> tuple[list[bool], int]:
    """Claim everything, let every lease expire on the server, then run
    ``action(claimed)`` for each attempt concurrently with the reaper
    declaring them all lost; returns the actions' answers and the reaper's count."""
    from nexq.queue.wheel import Entry

    claimed = await claim_all(br)
    leases = [br.keys.lease(c.spec.id, c.attempt) for c in claimed]
    with trio.fail_after(10):
        while any(await br.store.mget(leases)):
            await trio.sleep(0.02)
    answers: list[bool] = []
    lost: list[int] = []

    async def act(c: Any) -> None:
        answers.append(await action(c))

    async def reaper() -> None:
        lost.append(await br.due.reap([Entry("L", c.spec.id, c.attempt, 0, "w1") for c in claimed]))

    async with trio.open_nursery() as n:
        n.start_soon(reaper)
        for c in claimed:
            n.start_soon(act, c)
    return answers, lost[0]


async def test_enqueue_claim_ack_records_result(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    ins = Inspector(br)
    e = await br.enqueue("send_email", {"to": "a@example.com"})
    assert (await ins.get(e.task_id)).status is Status.PENDING
    [c] = await claim_all(br)
    assert c.spec.payload == {"to": "a@example.com"} and c.attempt == 1
    assert (await ins.get(e.task_id)).status is Status.RUNNING
    assert await br.ack(c, {"sent": True}) is True
    t = await ins.get(e.task_id)
    assert t.status is Status.SUCCEEDED and t.result == {"sent": True}
    assert [a.outcome.value for a in t.attempts] == ["succeeded"]
    assert await claim_all(br) == []


async def test_each_attempt_is_claimed_once_by_competing_readers(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue_many([EnqueueRequest("t", i) for i in range(300)])
    got: list[int] = []

    async def consumer(name: str) -> None:
        # Until everything is claimed: a fixed number of rounds could end
        # with the last slots still contended (rarely, on a busy machine).
        reader = LaneReader(br.store, br.keys)
        while len(got) < 300:
            for c in await br.claim(["default"], 7, name, reader):
                got.append(c.spec.payload)
            await trio.sleep(0)

    with trio.fail_after(30):
        async with trio.open_nursery() as n:
            for i in range(4):
                n.start_soon(consumer, f"w{i}")
    assert sorted(got) == list(range(300))


async def test_fifo_within_a_lane_and_priority_first(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker(fair_every=0)
    await br.enqueue_many([EnqueueRequest("t", f"low{i}", priority="low") for i in range(3)])
    await br.enqueue_many([EnqueueRequest("t", f"high{i}", priority=9) for i in range(3)])
    await br.enqueue("t", "normal0")
    got = [c.spec.payload for c in await claim_all(br)]
    assert got == ["high0", "high1", "high2", "normal0", "low0", "low1", "low2"]


async def test_low_priority_progresses_under_sustained_high_load(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker(fair_every=5)
    await br.enqueue_many([EnqueueRequest("t", "low", priority=0) for _ in range(5)])
    reader = LaneReader(br.store, br.keys)
    lows = 0
    for rnd in range(20):
        await br.enqueue_many([EnqueueRequest("t", "high", priority=9) for _ in range(2)])
        for c in await br.claim(["default"], 1, "w", reader, round_no=rnd):
            lows += c.spec.payload == "low"
    assert lows >= 3  # every 5th round serves the low lane first


async def test_bulk_enqueue_costs_constant_round_trips(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    calls = CountingStore.wrap(br)
    await br.enqueue_many([EnqueueRequest("t", i) for i in range(10)])
    small = calls.n
    calls.n = 0
    await br.enqueue_many([EnqueueRequest("t", i, delay=5) for i in range(500)]
                          + [EnqueueRequest("t", i) for i in range(2000)])
    assert calls.n <= small + 3  # the delayed half adds its wheel round trips


class CountingStore:
    """Counts round trips by wrapping the real store's execute/mget/get."""

    def __init__(self, store: Store) -> None:
        self.n = 0
        for name in ("execute", "get", "set", "mget", "incrby", "delete", "append"):
            orig = getattr(store, name)

            async def counted(*a, _orig=orig, **kw):  # type: ignore[no-untyped-def]
                self.n += 1
                return await _orig(*a, **kw)

            setattr(store, name, counted)

    @classmethod
    def wrap(cls, br: NodeBroker) -> CountingStore:
        return cls(br.store)


async def test_unique_key_returns_the_live_task(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    a = await br.enqueue("t", 1, unique_key="invoice-7")
    b = await br.enqueue("t", 2, unique_key="invoice-7")
    assert a.created and not b.created and b.task_id == a.task_id
    [c] = await claim_all(br)
    await br.ack(c)
    again = await br.enqueue("t", 3, unique_key="invoice-7")
    assert again.created and again.task_id != a.task_id


async def test_handler_failure_retries_then_dead_letters(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    ins = Inspector(br)
    e = await br.enqueue("t", None, max_retries=2)
    for attempt in (1, 2, 3):
        [c] = await claim_all(br)
        assert c.attempt == attempt
        assert await br.fail(c, ValueError(f"boom {attempt}"), retry_in=0) is True
    t = await ins.get(e.task_id)
    assert t.status is Status.DEAD
    assert [a.error_message for a in t.attempts] == ["boom 1", "boom 2", "boom 3"]
    page = await ins.list(status="dead")
    assert [x.id for x in page.tasks] == [e.task_id]
    assert await ins.requeue(e.task_id) is True
    [c] = await claim_all(br)
    assert c.attempt == 4
    await br.ack(c)
    assert (await ins.get(e.task_id)).status is Status.SUCCEEDED


async def test_purge_dead_removes_only_dead_tasks(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    ins = Inspector(br)
    dead = await br.enqueue("t", None, max_retries=0)
    live = await br.enqueue("t", None, priority=0)
    [c, _] = await claim_all(br)
    await br.fail(c, RuntimeError("x"))
    assert await ins.purge_dead() == 1
    assert await ins.get(dead.task_id) is None
    assert (await ins.get(live.task_id)).status is Status.RUNNING


async def test_cancel_pending_task_is_skipped_at_claim(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    ins = Inspector(br)
    e = await br.enqueue("t")
    assert await br.cancel(e.task_id) is True
    assert await br.cancel(e.task_id) is False
    assert await claim_all(br) == []
    assert (await ins.get(e.task_id)).status is Status.CANCELLED


async def test_cancel_running_task_shows_at_next_heartbeat_and_ack_loses(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue("t")
    [c] = await claim_all(br)
    assert await br.heartbeat([c]) == [(True, False)]
    assert await br.cancel(c.spec.id) is True
    assert await br.heartbeat([c]) == [(True, True)]
    assert await br.ack(c, "late") is False
    t = await Inspector(br).get(c.spec.id)
    assert t.status is Status.CANCELLED and t.result is None


async def test_ack_and_cancel_race_decides_one_outcome(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue_many([EnqueueRequest("t", i) for i in range(50)])
    claimed = await claim_all(br)
    wins: list[tuple[bool, bool]] = []

    async def race(c) -> None:  # type: ignore[no-untyped-def]
        results: dict[str, bool] = {}

        async def do_ack() -> None:
            results["ack"] = await br.ack(c, 1)

        async def do_cancel() -> None:
            results["cancel"] = await br.cancel(c.spec.id)

        async with trio.open_nursery() as n:
            n.start_soon(do_ack)
            n.start_soon(do_cancel)
        wins.append((results["ack"], results["cancel"]))

    async with trio.open_nursery() as n:
        for c in claimed:
            n.start_soon(race, c)
    assert len(wins) == 50 and all(a != b for a, b in wins)
    statuses = {t.status for t in (await Inspector(br).list(limit=100)).tasks}
    assert statuses <= {Status.SUCCEEDED, Status.CANCELLED}


async def test_lost_lease_is_retried_and_late_ack_refused(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker(lease_ms=200)
    ins = Inspector(br)
    e = await br.enqueue("t", max_retries=1)
    [c] = await claim_all(br)
    with trio.fail_after(10):
        while True:  # the scheduler's reaper notices the expired lease
            await br.run_due()
            t = await ins.get(e.task_id)
            if t.attempt == 2:
                break
            await trio.sleep(0.02)
    assert await br.heartbeat([c]) == [(False, True)]
    assert await br.ack(c, "stale") is False
    t = await ins.get(e.task_id)
    assert t.attempts[0].outcome.value == "lost" and t.attempts[0].worker == "w1"
    with trio.fail_after(10):
        while not (again := await claim_all(br)):
            await br.run_due()
            await trio.sleep(0.02)
    assert again[0].attempt == 2


async def test_reaper_and_ack_race_decides_one_outcome(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker(lease_ms=100)
    await br.enqueue_many([EnqueueRequest("t", i) for i in range(30)])
    outcomes, lost = await race_with_reaper(br, lambda c: br.ack(c, 1))
    assert sum(outcomes) + lost == 30


async def test_progress_is_visible(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue("t")
    [c] = await claim_all(br)
    await br.progress(c, 0.5, "half way")
    t = await Inspector(br).get(c.spec.id)
    assert t.progress["fraction"] == 0.5 and t.progress["message"] == "half way"


async def test_paused_queue_is_not_claimed(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    ins = Inspector(br)
    await br.enqueue("t", queue="mail")
    await ins.pause("mail")
    assert await claim_all(br, ["mail"]) == []
    [q] = await ins.queue_stats(["mail"])
    assert q["paused"] and q["pending"] == 1
    await ins.resume("mail")
    assert len(await claim_all(br, ["mail"])) == 1
    assert await ins.queues() == ["mail"]


async def test_listing_pages_newest_first_with_filters(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    ins = Inspector(br)
    ids = [(await br.enqueue("a" if i % 2 else "b", i)).task_id for i in range(25)]
    page = await ins.list(limit=10)
    assert [t.id for t in page.tasks] == ids[::-1][:10]
    page2 = await ins.list(limit=10, cursor=page.next_cursor)
    assert [t.id for t in page2.tasks] == ids[::-1][10:20]
    only_a = await ins.list(type="a", limit=100)
    assert [t.id for t in only_a.tasks] == [ids[i] for i in range(24, -1, -1) if i % 2]
    assert (await ins.list(status="succeeded")).tasks == []


@pytest.mark.parametrize("bad", [
    dict(type=""), dict(type="t", priority=10), dict(type="t", priority="urgent"),
    dict(type="t", delay=-1), dict(type="t", max_retries=-1), dict(type="t", queue="a:b"),
])
async def test_bad_requests_raise_value_error_and_store_nothing(make_broker: Callable[..., NodeBroker], bad: dict[str, Any]) -> None:
    br = make_broker()
    with pytest.raises(ValueError):
        await br.enqueue_many([EnqueueRequest(**bad)])
    assert await br.store.get(br.keys.seq) is None


async def test_explicit_task_id_clash_stores_nothing(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue("t", 1, task_id="order-1")
    with pytest.raises(ValueError, match="order-1"):
        await br.enqueue("t", 2, task_id="order-1")
    [c] = await claim_all(br)
    assert c.spec.payload == 1 and await claim_all(br) == []


async def test_task_not_started_by_its_deadline_is_cancelled_as_expired(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    ins = Inspector(br)
    late = await br.enqueue("t", "late", expires_in=0.2)
    await br.enqueue("t", "fresh", expires_in=60)
    with trio.fail_after(10):  # the scheduler's deadline entry fires
        while (await ins.get(late.task_id)).status is not Status.CANCELLED:
            await br.run_due()
            await trio.sleep(0.05)
    t = await ins.get(late.task_id)
    assert t.attempts[0].error_type == "Expired"
    [c] = await claim_all(br)
    assert c.spec.payload == "fresh"


async def test_an_expired_task_reached_by_a_worker_is_not_run(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    e = await br.enqueue("t", expires_in=0.1)
    task = await Inspector(br).get(e.task_id)
    assert task is not None and task.spec.expires_at is not None
    with trio.fail_after(5):  # past it (no scheduler: the claim itself notices the deadline)
        while br.clock() <= task.spec.expires_at:
            await trio.sleep(0.01)
    assert await claim_all(br) == []
    t = await Inspector(br).get(e.task_id)
    assert t.status is Status.CANCELLED and t.attempts[0].error_type == "Expired"


async def test_expiry_before_the_run_time_is_refused(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    with pytest.raises(ValueError, match="expire"):
        await br.enqueue("t", delay=10, expires_in=5)


async def test_weighted_queues_share_claims_by_weight(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue_many([EnqueueRequest("t", "mail", queue="mail") for _ in range(600)])
    await br.enqueue_many([EnqueueRequest("t", "reports", queue="reports") for _ in range(600)])
    reader = LaneReader(br.store, br.keys)
    got: list[str] = []
    for rnd in range(400):
        got += [c.spec.payload for c in await br.claim(
            ["mail", "reports"], 1, "w", reader, rnd, {"mail": 3.0, "reports": 1.0})]
    share = got.count("mail") / len(got)
    assert len(got) == 400 and 0.65 < share < 0.85  # 3:1 -> 75% expected


async def test_reaper_and_cancel_race_decides_one_outcome(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker(lease_ms=100)
    await br.enqueue_many([EnqueueRequest("t", i, max_retries=0) for i in range(30)])
    cancels, lost = await race_with_reaper(br, lambda c: br.cancel(c.spec.id))
    assert sum(cancels) + lost == 30
    statuses = [t.status for t in (await Inspector(br).list(limit=100)).tasks]
    assert statuses.count(Status.CANCELLED) == sum(cancels)
    assert statuses.count(Status.DEAD) == lost  # max_retries=0: a lost attempt is final


async def test_a_refused_request_does_not_hold_its_unique_key(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    with pytest.raises(ValueError, match="no task"):
        await br.enqueue("t", unique_key="k1", depends_on=["missing"])
    e = await br.enqueue("t", unique_key="k1")
    assert e.created
