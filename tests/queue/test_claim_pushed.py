"""Claiming the attempt a doorbell named (Claimer.claim_pushed): an idle
worker leases it without reading the lanes, and a hint that is stale,
forged, raced for or names a paused queue never runs anything twice, loses
nothing or miscounts a lane. Each test runs on the embedded store and on
redis-server (the ``store`` fixture)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import trio

from nexq.hooks import Hooks, Middleware
from nexq.queue import Claimed, EnqueueRequest, LaneReader, NodeBroker
from nexq.queue.lanes import PUSHED, TAKEN, Pushed
from nexq.store import Store


class Hints(Middleware):
    """Keeps the attempt each push named (what the doorbells ring with)."""

    def __init__(self) -> None:
        self.seen: list[Pushed | None] = []

    async def after_push(self, node: NodeBroker) -> None:
        self.seen.append(PUSHED.get())


def broker(store: Store, prefix: str) -> tuple[NodeBroker, Hints]:
    hints = Hints()
    return NodeBroker(store, namespace=prefix.rstrip(":"), hooks=Hooks([hints])), hints


async def pending(br: NodeBroker) -> int:
    [q] = await br.inspector().queue_stats(["default"])
    return int(q["pending"])


async def claim_pushed(br: NodeBroker, hints: Sequence[Pushed | None], capacity: int, worker: str) -> list[Claimed]:
    """Claim what ``hints`` name, and settle the claim (as a worker does while the handlers start)."""
    claimed, settle = await br.claim_pushed([h for h in hints if h is not None], capacity, worker)
    await settle()
    return claimed


async def normal_round(br: NodeBroker, reader: LaneReader | None = None) -> list[str]:
    got = await br.claim(["default"], 10, "other", reader or br.reader())
    for c in got:
        await br.ack(c)
    return [c.spec.id for c in got]


async def test_a_lone_push_names_its_attempt_and_an_idle_worker_claims_it_directly(
        store: Store, prefix: str) -> None:
    br, hints = broker(store, prefix)
    e = await br.enqueue("t", "x")
    [hint] = hints.seen
    assert hint is not None and (hint.task_id, hint.attempt, hint.queue) == (e.task_id, 1, "default")
    assert Pushed.decode(hint.encode()) == hint
    [c] = await claim_pushed(br, [hint], 5, "w")
    assert (c.spec.id, c.attempt, c.worker) == (e.task_id, 1, "w")
    assert await store.get(br.keys.lane_slot(hint.queue, hint.priority, hint.slot)) == TAKEN
    assert await pending(br) == 0  # resolved and counted once
    assert await normal_round(br) == []  # nothing left for a claim round
    assert await br.ack(c, "ok")
    assert (await br.inspector().get(e.task_id)).status.value == "succeeded"  # type: ignore[union-attr]


async def test_many_tasks_in_one_call_name_none(store: Store, prefix: str) -> None:
    br, hints = broker(store, prefix)
    await br.enqueue_many([EnqueueRequest("t", i) for i in range(3)])
    assert hints.seen[-1] is None  # a batch rings plainly: workers read the lanes


async def test_workers_racing_for_one_hint_run_it_once(store: Store, prefix: str) -> None:
    br, hints = broker(store, prefix)
    e = await br.enqueue("t", "x")
    [hint] = hints.seen
    got: list[list[str]] = []

    async def worker(name: str) -> None:
        got.append([c.spec.id for c in await claim_pushed(br, [hint], 5, name)])

    async with trio.open_nursery() as n:
        for name in ("a", "b", "c"):
            n.start_soon(worker, name)
    assert sorted(len(g) for g in got) == [0, 0, 1] and [e.task_id] in got
    assert await pending(br) == 0
    assert await normal_round(br) == []


async def test_a_stale_hint_claims_nothing_and_leaves_no_lease(store: Store, prefix: str) -> None:
    br, hints = broker(store, prefix)
    e = await br.enqueue("t", "x")
    [hint] = hints.seen
    assert await normal_round(br) == [e.task_id]  # claimed and finished the usual way first
    assert await claim_pushed(br, [hint], 5, "late") == []
    assert await store.get(br.keys.lease(e.task_id, 1)) is None
    assert await pending(br) == 0


async def test_a_forged_hint_is_given_back_and_the_task_still_runs(store: Store, prefix: str) -> None:
    br, hints = broker(store, prefix)
    e = await br.enqueue("t", "x")
    [hint] = hints.seen
    assert hint is not None
    wrong_slot = attrs.evolve(hint, slot=hint.slot + 7)
    assert await claim_pushed(br, [wrong_slot], 5, "w") == []
    assert await store.get(br.keys.lease(e.task_id, 1)) is None  # given back at once
    assert await pending(br) == 1
    assert await normal_round(br) == [e.task_id]
    for junk in (b"", b"x", b"1|2", b"a|b|c|d|e", b"5|3|1||q", "é|1|1|t|q".encode()):
        assert Pushed.decode(junk) is None


async def test_a_paused_queue_is_not_claimed_through_a_hint(store: Store, prefix: str) -> None:
    br, hints = broker(store, prefix)
    e = await br.enqueue("t", "x")
    [hint] = hints.seen
    assert hint is not None
    await br.inspector().pause("default")
    assert await claim_pushed(br, [hint], 5, "w") == []
    assert await store.get(br.keys.lease(e.task_id, 1)) is None
    assert await pending(br) == 1
    await br.inspector().resume("default")
    assert await claim_pushed(br, [hint], 5, "w") != []  # still where it was


async def test_capacity_bounds_what_hints_claim(store: Store, prefix: str) -> None:
    br, hints = broker(store, prefix)
    for i in range(3):
        await br.enqueue("t", i)
    named: Sequence[Pushed] = [h for h in hints.seen if h is not None]
    assert len(named) == 3
    got = await claim_pushed(br, named, 2, "w")
    assert len(got) == 2
    assert await pending(br) == 1
    assert len(await normal_round(br)) == 1


async def test_the_head_follows_attempts_claimed_from_rings(store: Store, prefix: str) -> None:
    br, hints = broker(store, prefix)
    for i in range(300):
        await br.enqueue("t", i)
        assert len(await claim_pushed(br, [hints.seen[-1]], 5, "w")) == 1
    lane = hints.seen[-1]
    assert lane is not None
    assert int(await store.get(br.keys.lane_head(lane.queue, lane.priority)) or 0) == 300
    late = await br.enqueue("t", "its ring was lost")  # only a claim round finds it
    assert await normal_round(br) == [late.task_id]


async def test_a_claim_round_finds_work_far_behind_a_head_held_back(store: Store, prefix: str) -> None:
    br, hints = broker(store, prefix)
    first = await br.enqueue("t", "first: its ring was lost")  # slot 1 waits: the head stays at 0
    for i in range(300):
        await br.enqueue("t", i)
        assert len(await claim_pushed(br, [hints.seen[-1]], 5, "w")) == 1
    late = await br.enqueue("t", "late")
    reader = br.reader()
    got: list[str] = []
    for _ in range(3):  # a few rounds at most, not one per claim window of slots
        got += await normal_round(br, reader)
    assert sorted(got) == sorted([first.task_id, late.task_id])
