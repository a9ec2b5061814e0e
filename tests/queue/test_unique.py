"""Unique keys: one live task per key, between racing producers too, and a
key left by a producer that died between its two writes is taken over."""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from nexq.queue import NodeBroker
from nexq.queue.producer import UNIQUE_GRACE


async def test_a_unique_key_left_by_a_dead_producer_is_taken_over(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    # The producer died after SET NX, long enough ago (and a pre-timestamp value).
    await br.store.set(br.keys.unique("k2"), f"never-created|{time.time() - UNIQUE_GRACE - 1:.3f}")
    await br.store.set(br.keys.unique("k3"), "never-created-either")
    for key in ("k2", "k3"):
        e = await br.enqueue("t", unique_key=key)
        assert e.created and not e.task_id.startswith("never")
        again = await br.enqueue("t", unique_key=key)
        assert not again.created and again.task_id == e.task_id


async def test_a_holder_still_being_written_is_waited_for(make_broker: Callable[..., NodeBroker]) -> None:
    """A key claimed a moment ago whose task is not there yet belongs to a
    producer one round trip behind: the second enqueue waits and names it."""
    br = make_broker()
    first = await br.enqueue("t", unique_key="k4", delay=60)
    spec = await br.store.get(br.keys.spec(first.task_id))
    assert spec is not None
    await br.store.delete(br.keys.spec(first.task_id))  # as if not written yet
    await br.store.set(br.keys.unique("k4"), f"{first.task_id}|{time.time():.3f}")

    async def write_late() -> None:
        await trio.sleep(0.3)  # the slow producer itself: the second enqueue must wait for it
        await br.store.set(br.keys.spec(first.task_id), spec)

    async with trio.open_nursery() as n:
        n.start_soon(write_late)
        second = await br.enqueue("t", unique_key="k4")
    assert not second.created and second.task_id == first.task_id


async def test_racing_producers_create_one_task_per_key(make_broker: Callable[..., NodeBroker]) -> None:
    """Separate brokers (as separate processes are) enqueue the same keys at
    once, round after round: each key gets exactly one task."""
    brokers = [make_broker() for _ in range(4)]
    for r in range(20):
        out: list[tuple[str, bool]] = []

        async def one(br, r=r) -> None:  # type: ignore[no-untyped-def]
            e = await br.enqueue("t", unique_key=f"race{r}")
            out.append((e.task_id, e.created))

        async with trio.open_nursery() as n:
            for br in brokers:
                n.start_soon(one, br)
        assert sum(created for _, created in out) == 1, out
        assert len({tid for tid, _ in out}) == 1, out
