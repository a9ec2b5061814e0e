"""Reserved numbers (nexq/queue/reservations.py): every enqueue after a
producer's first is one round trip while the numbers reserved in its last
write are younger than HOLD, and what it reserves ahead never loses, doubles, hides
or miscounts a task. Each test runs on the embedded store and on
redis-server (the ``store`` fixture)."""

from __future__ import annotations

from typing import Any

import trio

from nexq.config import Settings
from nexq.errors import StoreUnavailable
from nexq.keys import Keys
from nexq.queue import EnqueueRequest, LaneReader, NodeBroker
from nexq.queue.lanes import TAKEN
from nexq.queue.reservations import HOLD
from nexq.runtime.runtime import open_runtime
from nexq.store import Batch, Store, open_store
from tests.wrapped_store import WrappedStore

LANE = ("default", 5)


class Counted(WrappedStore):
    """A real store, with the round trips sent through it counted; ``fail``
    makes the next write of task records fail as if the process died first."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.round_trips = 0
        self.fail = False

    async def execute(self, batch: Batch) -> list[Any]:
        if self.fail and any(op == "set" and ":spec:" in str(args[0]) for op, args in batch.ops):
            self.fail = False
            raise StoreUnavailable("the producer died before its write")
        self.round_trips += 1
        return await self.inner.execute(batch)


class Clock:
    """The reservations' monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def producer(store: Store, prefix: str, clock: Clock | None = None) -> NodeBroker:
    br = NodeBroker(store, namespace=prefix.rstrip(":"), coalesce=False)
    if clock is not None:
        br.producer.reservations.clock = clock
    return br


async def lane(br: NodeBroker) -> tuple[int, int]:
    head, tail = await br.store.mget([br.keys.lane_head(*LANE), br.keys.lane_tail(*LANE)])
    return int(head or 0), int(tail or 0)


async def pending(br: NodeBroker) -> int:
    [q] = await br.inspector().queue_stats(["default"])
    return int(q["pending"])


async def claim_all(br: NodeBroker, reader: LaneReader, rounds: int = 6) -> list[str]:
    """Payloads claimed (and acked) until ``rounds`` rounds in a row got nothing."""
    out, empty = [], 0
    while empty < rounds:
        got = await br.claim(["default"], 50, "w", reader)
        for c in got:
            out.append(c.spec.payload)
            await br.ack(c)
        empty = 0 if got else empty + 1
    return out


async def listed(br: NodeBroker) -> set[Any]:
    page = await br.inspector().list(limit=500)
    return {t.spec.payload for t in page.tasks}


async def test_every_enqueue_after_the_first_is_one_round_trip(store: Store, prefix: str) -> None:
    counted = Counted(store)
    br = producer(counted, prefix)
    await br.enqueue("t", 0)  # reserves what it needs and the next call's numbers (and registers its queue)
    trips = []
    for i in range(1, 6):
        counted.round_trips = 0
        await br.enqueue("t", i)
        trips.append(counted.round_trips)
    assert trips == [1, 1, 1, 1, 1]
    assert await pending(br) == 6
    got = await claim_all(br, LaneReader(store, br.keys))
    assert got == list(range(6))  # FIFO, each once


async def test_an_enqueue_after_an_idle_spell_shorter_than_hold_is_one_round_trip(
        store: Store, prefix: str) -> None:
    clock = Clock()
    counted = Counted(store)
    br = producer(counted, prefix, clock)
    await br.enqueue("t", 0)
    trips = []
    for i in range(1, 4):
        clock.now += HOLD * 0.9  # a web app's enqueue every few seconds
        counted.round_trips = 0
        await br.enqueue("t", i)
        trips.append(counted.round_trips)
    assert trips == [1, 1, 1]
    assert await claim_all(br, LaneReader(store, br.keys)) == [0, 1, 2, 3]
    assert await pending(br) == 0


async def test_pending_counts_are_exact_with_reservations_open(store: Store, prefix: str) -> None:
    a, b = producer(store, prefix), producer(store, prefix)
    for i in range(3):
        await a.enqueue("t", f"a{i}")
    for i in range(2):
        await b.enqueue("t", f"b{i}")
        await a.enqueue("t", f"a{3 + i}")
    head, tail = await lane(a)
    assert tail - head > 7  # both hold reserved, unwritten slots
    assert await pending(a) == 7
    reader = LaneReader(store, a.keys)
    got = await a.claim(["default"], 2, "w", reader)
    assert len(got) == 2 and await pending(a) == 5
    await a.producer.release()
    await b.producer.release()
    assert await pending(a) == 5  # released slots are tombstones, not tasks
    rest = await claim_all(a, reader)
    assert sorted([c.spec.payload for c in got] + rest) == sorted([f"a{i}" for i in range(5)] + ["b0", "b1"])
    assert await pending(a) == 0


async def test_an_expired_reservation_is_given_up_and_tombstoned(store: Store, prefix: str) -> None:
    clock = Clock()
    counted = Counted(store)
    br = producer(counted, prefix, clock)
    await br.enqueue("t", 1)
    await br.enqueue("t", 2)  # slot 3 is reserved ahead
    _, tail = await lane(br)
    assert tail == 3 and await store.get(br.keys.lane_slot(*LANE, 3)) is None
    clock.now += HOLD  # idle: the reservation expires
    counted.round_trips = 0
    await br.enqueue("t", 3)
    assert counted.round_trips == 2  # reserves again rather than write into an old slot
    assert await store.get(br.keys.lane_slot(*LANE, 3)) == TAKEN  # given up: tombstoned
    assert await claim_all(br, LaneReader(store, br.keys)) == [1, 2, 3]
    assert await pending(br) == 0


async def test_a_slot_tombstoned_by_a_claimer_makes_the_producer_push_again(store: Store, prefix: str) -> None:
    counted = Counted(store)
    br = producer(counted, prefix)
    await br.enqueue("t", 1)
    await br.enqueue("t", 2)  # slot 3 reserved ahead, unwritten
    # A claimer past its grace tombstones the empty slot (as for a frozen producer).
    reader = LaneReader(store, br.keys, grace=0.0)
    assert await claim_all(br, reader, rounds=2) == [1, 2]
    assert await store.get(br.keys.lane_slot(*LANE, 3)) == TAKEN
    counted.round_trips = 0
    await br.enqueue("t", 3)  # its SET NX into slot 3 fails: pushed again to a new slot
    assert counted.round_trips >= 2
    assert await pending(br) == 1
    assert await claim_all(br, reader) == [3]  # never lost, never twice
    assert await pending(br) == 0
    assert await listed(br) == {1, 2, 3}


async def until_passed(br: NodeBroker, reader: LaneReader, got: list[Any]) -> None:
    """Claim (a worker's polling rounds) until the lane's head reached its
    tail: every hole tombstoned after the reader's grace and passed."""
    with trio.fail_after(20):
        while True:
            got += await claim_all(br, reader, rounds=1)
            head, tail = await lane(br)
            if head == tail:
                return
            await trio.sleep(0.05)


async def test_an_idle_reservation_does_not_stall_the_lane(store: Store, prefix: str) -> None:
    clock = Clock()
    idle = producer(store, prefix, clock)
    await idle.enqueue("t", "first")
    await idle.enqueue("t", "second")  # reserves ahead, then goes idle
    busy = producer(store, prefix)
    await busy.enqueue_many([EnqueueRequest("t", i) for i in range(100)])
    reader = LaneReader(store, busy.keys)  # the default grace, 5 s
    got = await claim_all(busy, reader)
    assert sorted(got, key=str) == sorted(["first", "second", *range(100)], key=str)  # all, within the grace
    head, tail = await lane(busy)
    assert head < tail and await pending(busy) == 0  # the hole holds the head back, not the work
    reader.grace = 0.3  # (a shorter wait for this test)
    await until_passed(busy, reader, got)
    assert len(got) == 102
    clock.now += 3600  # an hour later its reservation has long expired: it reserves again
    await idle.enqueue("t", "after an hour")
    assert await claim_all(busy, reader) == ["after an hour"]
    assert await pending(busy) == 0


async def test_work_far_past_an_idle_reservation_is_claimed_without_waiting_for_the_grace(
        store: Store, prefix: str) -> None:
    idle = producer(store, prefix, Clock())
    await idle.enqueue("t", "first")
    await idle.enqueue("t", "second")  # reserves slot 3 ahead, then goes idle
    busy = producer(store, prefix)
    for chunk in range(4):  # far more than one claim window past the hole
        await busy.enqueue_many([EnqueueRequest("t", chunk * 500 + i) for i in range(500)])
    reader = LaneReader(store, busy.keys, grace=3600.0)  # the hole is never given up here
    got = await claim_all(busy, reader, rounds=3)
    assert sorted(got, key=str) == sorted(["first", "second", *range(2000)], key=str)
    head, _ = await lane(busy)
    assert head == 2  # the hole still holds the head back, not the work
    await idle.enqueue("t", "late")  # the idle producer writes its reserved slot after all
    assert await claim_all(busy, reader, rounds=2) == ["late"]
    await busy.enqueue("t", "next")
    assert await claim_all(busy, reader, rounds=2) == ["next"]
    assert await pending(busy) == 0


async def test_a_producer_dying_between_reservation_and_write_loses_nothing(store: Store, prefix: str) -> None:
    counted = Counted(store)
    dying = producer(counted, prefix)
    await dying.enqueue("t", "acked")
    counted.fail = True
    try:
        await dying.enqueue("t", "never acknowledged")  # busy: it reserved ahead, then dies
    except StoreUnavailable:
        pass
    else:
        raise AssertionError("the write should have failed")
    # The process is gone: its reserved slots and index positions stay unused.
    other = producer(store, prefix)
    for i in range(3):
        await other.enqueue("t", i)
    assert await pending(other) == 4
    got: list[Any] = []
    await until_passed(other, LaneReader(store, other.keys, grace=0.3), got)
    assert sorted(got, key=str) == sorted(["acked", 0, 1, 2], key=str)
    assert await pending(other) == 0
    assert await listed(other) == {"acked", 0, 1, 2}  # the index holes are skipped
    pages, cursor = [], None
    while True:  # and pages of one task each walk over them
        page = await other.inspector().list(limit=1, cursor=cursor)
        pages += [t.spec.payload for t in page.tasks]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == [2, 1, 0, "acked"]  # newest first


async def test_many_producers_interleaving_lose_nothing_and_run_nothing_twice(store: Store, prefix: str) -> None:
    clocks = [Clock() for _ in range(4)]
    brokers = [producer(store, prefix, c) for c in clocks]
    claimer = producer(store, prefix)
    got: list[Any] = []

    async def produce(k: int, br: NodeBroker) -> None:
        for i in range(0, 60, 6):
            if i % 12:
                for j in range(i, i + 6):
                    await br.enqueue("t", k * 100 + j)
            else:
                await br.enqueue_many([EnqueueRequest("t", k * 100 + j) for j in range(i, i + 6)])
            if k % 2:
                clocks[k].now += HOLD  # half the producers pause past HOLD between bursts
            await trio.lowlevel.checkpoint()

    async def consume(reader: LaneReader) -> None:
        while True:
            for c in await claimer.claim(["default"], 7, "w", reader):
                got.append(c.spec.payload)
                await claimer.ack(c)
            await trio.sleep(0.005)

    expected = sorted(k * 100 + j for k in range(4) for j in range(60))
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(consume, LaneReader(store, claimer.keys, grace=0.3))
        async with trio.open_nursery() as producers:
            for k, br in enumerate(brokers):
                producers.start_soon(produce, k, br)
        with trio.fail_after(20):
            while len(got) < len(expected):
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    assert sorted(got) == expected  # nothing lost, nothing twice
    assert await pending(claimer) == 0
    page = await claimer.inspector().list(limit=500)
    assert sorted(t.spec.payload for t in page.tasks) == expected


async def test_a_closing_runtime_gives_its_reserved_slots_back(resp_url: str, prefix: str) -> None:
    ns = prefix.rstrip(":")
    async with open_runtime(Settings(store=resp_url, namespace=ns)) as rt:
        await rt.broker.enqueue("t", 1)
        await rt.broker.enqueue("t", 2)  # busy: slot 3 reserved ahead
    async with open_store(resp_url) as store:
        k = Keys(ns)
        assert await store.get(k.lane_tail(*LANE)) == b"3"
        assert await store.get(k.lane_slot(*LANE, 3)) == TAKEN  # tombstoned on close: no claimer waits for it
