"""Group commit of enqueues (nexq/queue/enqueue_group.py): MemoryStore and RESP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from nexq.errors import StoreUnavailable
from nexq.queue import EnqueueRequest, Inspector, LaneReader, NodeBroker
from nexq.store import Batch, open_store
from nexq.task import Status

from .test_engine import CountingStore


async def together(n: int, call: Callable[[int], Awaitable[Any]]) -> list[Any]:
    """``call(i)`` for i in range(n), all started at once; per call its
    result or the exception it raised."""
    out: list[Any] = [None] * n

    async def one(i: int) -> None:
        try:
            out[i] = await call(i)
        except (ValueError, StoreUnavailable) as exc:
            out[i] = exc

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return out


def gate_store(br: NodeBroker) -> trio.Event:
    """Hold every ``execute`` on ``br``'s store until the returned event is set."""
    gate, real = trio.Event(), br.store.execute

    async def gated(batch: Batch) -> list[Any]:
        await gate.wait()
        return await real(batch)

    br.store.execute = gated  # type: ignore[method-assign]
    return gate


async def test_concurrent_enqueues_are_created_once_in_their_lanes_sharing_round_trips(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker(fair_every=0)
    await br.enqueue_many([EnqueueRequest("t", "warm", queue=q) for q in ("a", "b")])
    [warm_a] = await br.claim(["a"], 1, "w", LaneReader(br.store, br.keys))
    [warm_b] = await br.claim(["b"], 1, "w", LaneReader(br.store, br.keys))
    calls = CountingStore.wrap(br)

    def req(i: int, j: int = 0) -> EnqueueRequest:
        return EnqueueRequest("t", [i, j], queue="ab"[i % 2], priority=(0, 5, 9)[i % 3])

    # Most callers enqueue one task, every 10th three in one call.
    def call(i: int) -> Awaitable[Any]:
        return br.enqueue_many([req(i, j) for j in range(3 if i % 10 == 0 else 1)])

    out = await together(300, call)
    assert calls.n <= 30  # 600+ one call at a time; here a lone write, then groups
    ids = {}
    for i, got in enumerate(out):
        assert [e.created for e in got] == [True] * (3 if i % 10 == 0 else 1)
        for j, e in enumerate(got):
            ids[e.task_id] = [i, j]
    assert len(ids) == 300 + 30 * 2  # distinct ids, one per request
    tasks = await Inspector(br).get_many(list(ids))
    assert all(t is not None and t.spec.payload == ids[t.id] and t.status is Status.PENDING for t in tasks)
    for q in ("a", "b"):
        claimed = await br.claim([q], 1000, "w", LaneReader(br.store, br.keys))
        assert sorted(c.spec.id for c in claimed) == sorted(t for t, (i, _) in ids.items() if "ab"[i % 2] == q)
        prios = [c.spec.priority for c in claimed]
        assert prios == sorted(prios, reverse=True)  # each task in its priority's lane
        assert all(c.spec.priority == (0, 5, 9)[c.spec.payload[0] % 3] for c in claimed)
    assert await br.claim(["a", "b"], 1000, "w", LaneReader(br.store, br.keys)) == []
    assert warm_a.spec.id not in ids and warm_b.spec.id not in ids


async def test_an_invalid_request_fails_only_its_caller(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue("t", -1)
    calls = CountingStore.wrap(br)
    out = await together(40, lambda i: br.enqueue("t", i, priority=99 if i == 17 else 5))
    assert isinstance(out[17], ValueError)
    good = [e for i, e in enumerate(out) if i != 17]
    assert all(e.created for e in good) and len({e.task_id for e in good}) == 39
    assert calls.n <= 6  # they did share round trips
    claimed = await br.claim(["default"], 100, "w", LaneReader(br.store, br.keys))
    assert sorted(c.spec.payload for c in claimed) == [-1, *(i for i in range(40) if i != 17)]


async def test_unique_key_duplicates_in_one_group_resolve_to_one_task(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue("t", "warm")
    gate = gate_store(br)
    out: list[Any] = [None] * 60

    async def call(i: int) -> None:
        out[i] = await br.enqueue("t", i, unique_key=f"k{i % 10}")

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(br.enqueue, "t", "lone")  # writes at once, held by the gate
            await trio.testing.wait_all_tasks_blocked()
            for i in range(60):  # so these all gather in one group behind it
                nursery.start_soon(call, i)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
    for k in range(10):
        mine = [out[i] for i in range(k, 60, 10)]
        assert len({e.task_id for e in mine}) == 1  # everyone with key k got the same task
        assert sum(e.created for e in mine) == 1
    claimed = await br.claim(["default"], 100, "w", LaneReader(br.store, br.keys))
    assert len(claimed) == 12
    assert sorted(c.spec.unique_key or "" for c in claimed) == sorted(["", "", *(f"k{k}" for k in range(10))])


async def test_a_failed_write_reaches_every_caller_of_the_group(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue("t", "warm")
    gate, real = gate_store(br), br.store.execute

    async def failing(batch: Batch) -> list[Any]:
        await gate.wait()
        raise StoreUnavailable("store went away")

    br.store.execute = failing  # type: ignore[method-assign]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            results: list[Any] = []

            async def go(i: int) -> None:
                try:
                    results.append(await br.enqueue("t", i))
                except StoreUnavailable as exc:
                    results.append(exc)

            for i in range(20):
                nursery.start_soon(go, i)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
    assert len(results) == 20 and all(isinstance(r, StoreUnavailable) for r in results)
    assert len({id(r) for r in results}) == 20  # each caller its own exception
    br.store.execute = real  # type: ignore[method-assign]
    e = await br.enqueue("t", "after")  # the broker is not left stuck
    assert e.created


async def test_a_store_going_down_fails_every_waiting_caller(own_redis: Any, prefix: str) -> None:
    sizes: list[int] = []
    errors: list[BaseException] = []
    done = 0
    async with open_store(own_redis.url, connect_timeout=1, command_timeout=5) as store:
        br = NodeBroker(store, namespace=prefix.rstrip(":"))
        group = br.producer._coalescer  # the group commit's writer, counted
        real = group._write

        async def counted(specs: Any, chosen: Any) -> Any:
            sizes.append(len(specs))
            return await real(specs, chosen)

        group._write = counted

        async def producer(i: int) -> None:
            nonlocal done
            try:
                while True:
                    await br.enqueue("t", i)
                    done += 1
            except StoreUnavailable as exc:
                errors.append(exc)

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(producer, i)
                while done < 2000:
                    await trio.sleep(0.01)
                own_redis.stop(kill=True)
    assert len(errors) == 50  # every caller got StoreUnavailable, none hung
    assert max(sizes) > 1  # they were enqueuing in groups


async def test_a_cancelled_caller_does_not_break_its_group(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue("t", "warm")
    [warm] = await br.claim(["default"], 1, "w", LaneReader(br.store, br.keys))
    gate = gate_store(br)
    early, late = {3, 8, 14, 21}, {5, 11, 19, 26}  # cancelled before joining / once written
    scopes: dict[int, trio.CancelScope] = {}
    got: dict[int, Any] = {}

    async def call(i: int) -> None:
        with trio.CancelScope() as scope:
            scopes[i] = scope
            if i in early:
                scope.cancel()
            try:
                got[i] = (await br.enqueue("t", i)).task_id
            except trio.Cancelled:
                got[i] = "cancelled"
                raise

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, 0)  # writes at once, alone: held by the gate
            await trio.testing.wait_all_tasks_blocked()
            for i in range(1, 30):
                nursery.start_soon(call, i)
            await trio.testing.wait_all_tasks_blocked()  # everyone's write has begun
            for i in late:
                scopes[i].cancel()
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
    claimed = await br.claim(["default"], 100, "w", LaneReader(br.store, br.keys))
    stored = {c.spec.payload: c.spec.id for c in claimed}
    assert len(stored) == len(claimed)  # each task once
    for i in range(30):
        if i in early and got[i] == "cancelled":
            assert i not in stored  # it left its group before the write
        elif got[i] == "cancelled":
            assert i in late and i in stored  # its group's write had begun: created
        else:
            assert stored[i] == got[i]
    assert all(got[i] != "cancelled" for i in range(30) if i not in early | late)
    assert warm.spec.payload == "warm"


@pytest.mark.parametrize("n", [1, 3])
async def test_a_lone_call_writes_at_once(make_broker: Callable[..., NodeBroker], n: int) -> None:
    br = make_broker()
    await br.enqueue("t", "warm")  # reserves one number of each counter ahead
    calls = CountingStore.wrap(br)
    out = await br.enqueue_many([EnqueueRequest("t", i) for i in range(n)])
    # Covered by the numbers reserved ahead: the write alone; else one more round trip for them.
    assert calls.n == (1 if n == 1 else 2) and [e.created for e in out] == [True] * n
