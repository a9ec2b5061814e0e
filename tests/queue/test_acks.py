"""Group commit of acks and the terminal write's TTLs (MemoryStore and RESP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from nexq.errors import StoreUnavailable
from nexq.queue import EnqueueRequest, Inspector, LaneReader, NodeBroker
from nexq.store import Batch
from nexq.task import Status

from .test_engine import CountingStore


async def ack_together(br: NodeBroker, claimed: list[Any], result: Any = None) -> list[Any]:
    """Ack every attempt from its own task at the same moment; per attempt
    True / False, or the StoreUnavailable its ack raised."""
    out: list[Any] = [None] * len(claimed)

    async def one(i: int) -> None:
        try:
            out[i] = await br.ack(claimed[i], result)
        except StoreUnavailable as exc:
            out[i] = exc

    async with trio.open_nursery() as n:
        for i in range(len(claimed)):
            n.start_soon(one, i)
    return out


async def test_acks_finishing_together_share_two_round_trips(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue_many([EnqueueRequest("t", i) for i in range(40)])
    claimed = await br.claim(["default"], 40, "w", LaneReader(br.store, br.keys))
    calls = CountingStore.wrap(br)
    assert await ack_together(br, claimed, "ok") == [True] * 40
    assert calls.n <= 3  # decide, follow up (+ a spare for a split group)
    ins = Inspector(br)
    tasks = await ins.get_many([c.spec.id for c in claimed])
    assert all(t is not None and t.status is Status.SUCCEEDED and t.result == "ok" for t in tasks)
    [stats] = await ins.queue_stats(["default"])
    assert stats["succeeded"] == 40
    minute = int(br.clock() // 60)
    assert int(await br.store.get(br.keys.minute(minute, "processed")) or 0) == 40


async def test_an_attempt_decided_elsewhere_loses_alone_in_its_group(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue_many([EnqueueRequest("t", i) for i in range(3)])
    claimed = await br.claim(["default"], 3, "w", LaneReader(br.store, br.keys))
    assert await br.cancel(claimed[1].spec.id) is True
    assert await ack_together(br, claimed) == [True, False, True]
    statuses = [t.status for t in await Inspector(br).get_many([c.spec.id for c in claimed])]  # type: ignore[union-attr]
    assert statuses == [Status.SUCCEEDED, Status.CANCELLED, Status.SUCCEEDED]


async def test_a_store_failure_reaches_every_ack_of_the_group(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue_many([EnqueueRequest("t", i) for i in range(5)])
    claimed = await br.claim(["default"], 5, "w", LaneReader(br.store, br.keys))
    real = br.store.execute

    async def failing(batch: Batch) -> list[Any]:
        raise StoreUnavailable("store went away")

    br.store.execute = failing  # type: ignore[method-assign]
    out = await ack_together(br, claimed)
    assert all(isinstance(r, StoreUnavailable) for r in out)
    br.store.execute = real  # type: ignore[method-assign]
    # Nothing was decided: the attempts are still running (the reaper's case).
    tasks = await Inspector(br).get_many([c.spec.id for c in claimed])
    assert {t.status for t in tasks if t is not None} == {Status.RUNNING}


async def test_a_result_json_cannot_carry_fails_only_its_own_ack(make_broker: Callable[..., NodeBroker]) -> None:
    br = make_broker()
    await br.enqueue_many([EnqueueRequest("t", i) for i in range(2)])
    good, bad = await br.claim(["default"], 2, "w", LaneReader(br.store, br.keys))
    results: dict[str, Any] = {}

    async def ack(name: str, c: Any, value: Any) -> None:
        try:
            results[name] = await br.ack(c, value)
        except TypeError as exc:
            results[name] = exc

    async with trio.open_nursery() as n:
        n.start_soon(ack, "good", good, 1)
        n.start_soon(ack, "bad", bad, {1, 2})
    assert results["good"] is True and isinstance(results["bad"], TypeError)


@pytest.mark.parametrize("outcome", ["succeeded", "dead", "cancelled"])
async def test_every_key_of_a_finished_task_expires(make_broker: Callable[..., NodeBroker], outcome: str) -> None:
    br = make_broker(retention=3600.0)
    e = await br.enqueue("t", 1, max_retries=0)
    [c] = await br.claim(["default"], 1, "w", LaneReader(br.store, br.keys))
    await br.progress(c, 0.5, "half")
    if outcome == "succeeded":
        assert await br.ack(c, "r") is True
    elif outcome == "dead":
        assert await br.fail(c, RuntimeError("boom")) is True
    else:
        assert await br.cancel(e.task_id) is True
    k, tid = br.keys, e.task_id
    assert (await Inspector(br).get(tid)).status.value == outcome
    keys = [k.spec(tid), k.cur(tid), k.fin(tid, 1), k.progress(tid), k.index(c.spec.seq)]
    minute = int(br.clock() // 60)
    if outcome != "cancelled":
        keys.append(k.minute(minute, "processed" if outcome == "succeeded" else "failed"))
    for key in keys:
        ttl = await br.store.pttl(key)
        assert 0 < ttl, key
