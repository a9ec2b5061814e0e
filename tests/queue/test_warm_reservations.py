"""Kept warm (nexq/queue/reservations.py, "Kept warm"): a producer whose
reserved numbers are renewed while it idles enqueues in one round trip
however long the pause, renewing costs a few numbers (tombstoned slots, a
rare index position), and nothing is lost, run twice or hidden. Each test
runs on the embedded store and on redis-server (the ``store`` fixture)."""

from __future__ import annotations

import random
from typing import Any

import trio

from nexq.queue import EnqueueRequest, LaneReader, NodeBroker
from nexq.queue.lanes import TAKEN
from nexq.queue.reconcile import Reconciler
from nexq.queue.reservations import INDEX_HOLD, INDEX_WARM, WARM_AFTER, WARM_LANES
from nexq.store import Store
from tests.queue.test_enqueue_reservations import Clock, Counted, claim_all, listed, pending, producer


async def number(store: Store, key: str) -> int:
    return int(await store.get(key) or 0)


async def test_a_warm_producer_enqueues_in_one_round_trip_after_any_pause(store: Store, prefix: str) -> None:
    clock = Clock()
    counted = Counted(store)
    br = producer(counted, prefix, clock)
    await br.enqueue("t", 0)
    assert not br.producer.warm_due()  # its write renewed what it used: nothing to do
    counted.round_trips = 0
    assert await br.producer.refresh() is False and counted.round_trips == 0
    seq0 = await number(store, br.keys.seq)
    tail0 = await number(store, br.keys.lane_tail("default", 5))
    trips, renewals = [], 0
    for i in range(1, 4):
        for _ in range(40):  # 80 s idle, looked at as the keepers do
            clock.now += WARM_AFTER
            counted.round_trips = 0
            wrote = await br.producer.refresh()
            assert counted.round_trips == (1 if wrote else 0)
            renewals += wrote
        counted.round_trips = 0
        await br.enqueue("t", i)
        trips.append(counted.round_trips)
    assert trips == [1, 1, 1]  # without renewal: 2 (the lane's block expired, see test_enqueue_reservations)
    assert renewals == 3 * 40  # each lane block renewed once WARM_AFTER old
    # Renewing burns one lane slot per renewal (tombstoned, passed by claimers
    # at once) and an index position only every INDEX_WARM seconds.
    assert await number(store, br.keys.lane_tail("default", 5)) - tail0 == 3 + 3 * 40
    assert await number(store, br.keys.seq) - seq0 <= 3 + 3 * (int(80 // INDEX_WARM) + 1)
    assert await store.get(br.keys.lane_slot("default", 5, tail0)) == TAKEN
    assert await pending(br) == 4
    assert await claim_all(br, LaneReader(store, br.keys)) == [0, 1, 2, 3]  # FIFO, each once
    assert await listed(br) == {0, 1, 2, 3}


async def test_only_the_lanes_used_last_are_kept_warm(store: Store, prefix: str) -> None:
    clock = Clock()
    counted = Counted(store)
    br = producer(counted, prefix, clock)
    queues = [f"q{i}" for i in range(WARM_LANES + 2)]
    for q in queues:
        await br.enqueue("t", q, queue=q)
    tails = {q: await number(store, br.keys.lane_tail(q, 5)) for q in queues}
    clock.now += WARM_AFTER
    assert await br.producer.refresh()
    for q in queues[:2]:  # the two used longest ago: given up, their reserved slot tombstoned
        assert await number(store, br.keys.lane_tail(q, 5)) == tails[q]
        assert await store.get(br.keys.lane_slot(q, 5, tails[q])) == TAKEN
    for q in queues[2:]:
        assert await number(store, br.keys.lane_tail(q, 5)) == tails[q] + 1
    clock.now += WARM_AFTER * 0.9
    counted.round_trips = 0
    await br.enqueue("t", "warm", queue=queues[-1])
    assert counted.round_trips == 1
    counted.round_trips = 0
    await br.enqueue("t", "cold", queue=queues[0])
    assert counted.round_trips == 2  # reserves first, as any producer after a pause
    for q in (queues[0], queues[-1]):
        got = await br.claim([q], 10, "w", LaneReader(store, br.keys))
        assert sorted(c.spec.payload for c in got) == sorted([q, "cold" if q == queues[0] else "warm"])


async def test_renewals_racing_enqueues_lose_nothing_and_run_nothing_twice(store: Store, prefix: str) -> None:
    clock = Clock()
    br = producer(store, prefix, clock)
    claimer = producer(store, prefix)
    rng = random.Random(7)
    expected = list(range(300))

    async def produce() -> None:
        for i in range(0, 300, 3):
            if i % 2:
                await br.enqueue_many([EnqueueRequest("t", j) for j in range(i, i + 3)])
            else:
                for j in range(i, i + 3):
                    await br.enqueue("t", j)
            clock.now += rng.choice([0.0, 0.5, WARM_AFTER, 2 * WARM_AFTER])
            await trio.lowlevel.checkpoint()

    async def renew() -> None:
        while True:
            await br.producer.refresh()
            await trio.lowlevel.checkpoint()

    got: list[Any] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(renew)
        await produce()
        nursery.cancel_scope.cancel()
    reader = LaneReader(store, claimer.keys, grace=0.3)
    with trio.fail_after(20):
        while len(got) < len(expected):
            got += await claim_all(claimer, reader, rounds=1)
            await trio.sleep(0.01)
    assert sorted(got) == expected  # nothing lost, nothing twice
    assert await pending(claimer) == 0
    assert await listed(claimer) == set(expected)


async def test_reconciliation_keeps_its_low_water_mark_below_recent_reservations(
        store: Store, prefix: str) -> None:
    clock = Clock()
    idle = producer(store, prefix, clock)
    await idle.enqueue("t", "a")  # position 1; position 2 reserved ahead
    other = NodeBroker(store, namespace=prefix.rstrip(":"), coalesce=False, clock=clock)
    await other.enqueue("t", "b", delay=60)  # position 3 (reserves 4 ahead)
    rec = Reconciler(other)
    await rec.run(full=True)  # sees positions up to 4 handed out
    await store.delete(idle.keys.index(1))  # the oldest entry is gone (retention)
    clock.now += 10  # rounds later, within INDEX_HOLD
    await rec.run(full=True)
    low = await number(store, other.keys.reconcile_low)
    assert low <= 2  # position 2 may still be written: idle holds it for INDEX_HOLD
    await idle.enqueue("t", "late")  # a warm producer writes it after a long pause
    assert (await store.get(idle.keys.index(2))) is not None
    clock.now += INDEX_HOLD + 1
    await rec.run(full=True)
    clock.now += 1
    await rec.run(full=True)
    assert await number(store, other.keys.reconcile_low) <= 2  # position 2 is in use now: never skipped
