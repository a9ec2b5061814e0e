"""The store guard: admission by Nexq's own account of its bytes; evictions
detected by canaries and reported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from nexq.app import Nexq
from nexq.cli.doctor import diagnose
from nexq.config import ConfigError, Settings
from nexq.errors import StoreFull
from nexq.hooks import Hooks
from nexq.keys import Keys
from nexq.queue import NodeBroker
from nexq.runtime.admission import HEADROOM, TASK_ALLOWANCE, task_bytes
from nexq.runtime.guard import EVICTION_REPORTED, Admission, StoreGuard, eviction_advice, health
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.worker import Worker
from nexq.store import open_store
from nexq.store.memory import MemoryStore
from tests.clocks import trio_clock

PAD = "x" * 1000


def broker(store: MemoryStore, *guards: StoreGuard, ns: str = "g") -> NodeBroker:
    return NodeBroker(store, namespace=ns, hooks=Hooks([Admission(list(guards), ["node0"])]))


async def test_a_call_that_does_not_fit_is_refused_whole_before_anything_is_written() -> None:
    store = MemoryStore()
    guard = StoreGuard(store, Keys("g"), memory_limit=100_000)
    br = broker(store, guard)
    one = task_bytes(br.make_spec(_req(), 0.0))
    fits = int(100_000 * (1 - HEADROOM)) // one
    await br.enqueue_many([_req() for _ in range(fits - 5)])
    keys_before = len(store)
    with pytest.raises(StoreFull, match="do not fit"):
        await br.enqueue_many([_req() for _ in range(10)])  # 5 would fit: the call is refused whole
    assert len(store) == keys_before and guard.accounting.refused == 1
    await br.enqueue_many([_req() for _ in range(5)])  # what fits is still accepted
    with pytest.raises(StoreFull):
        await br.enqueue("t", PAD)
    assert guard.accounting.accounted <= guard.accounting.budget  # type: ignore[operator]


def _req() -> Any:
    from nexq.queue import EnqueueRequest

    return EnqueueRequest("t", PAD)


async def test_the_account_is_shared_by_processes_and_survives_a_restart() -> None:
    store = MemoryStore()
    a = StoreGuard(store, Keys("g"), memory_limit=100_000)
    await broker(store, a).enqueue_many([_req() for _ in range(20)])
    b = StoreGuard(store, Keys("g"), memory_limit=100_000)  # another process, or this one restarted
    assert b.accounting.accounted == 0
    await b.accounting.sync()
    assert b.accounting.accounted == a.accounting.accounted >= 20 * (len(PAD) + TASK_ALLOWANCE)
    with pytest.raises(StoreFull):  # what a filled, b refuses
        await broker(store, b).enqueue_many([_req() for _ in range(20)])


async def test_refusal_lifts_once_tasks_end_and_their_retention_passes(autojump_clock: Any) -> None:
    # Pogocache's rss/bytes never fall after keys expire; Nexq's own account does.
    store = MemoryStore()
    clock = trio_clock()
    app = Nexq()

    @app.task("t")
    async def t(payload: Any) -> str:
        return "done"

    settings = Settings(namespace="lift", retention=5.0, store_memory_limit=200_000)
    rt = Runtime.build(settings, store, app=app, clock=clock)
    app.bind(rt)
    acct = rt.guard.accounting
    handles = []
    with pytest.raises(StoreFull):
        while True:
            handles.append(await app.enqueue("t", PAD))
    assert len(handles) > 40
    async with trio.open_nursery() as n:
        w = Worker(rt, app, concurrency=8)
        await n.start(w.run)
        await n.start(Scheduler(rt.broker).run)
        await n.start(rt.guard.run)
        while w.processed < len(handles):
            await trio.sleep(0.1)
        # Ended tasks keep their keys for the retention: still counted, still refused.
        await acct.sync()
        assert acct.live == 0 and acct.retained > 0
        with pytest.raises(StoreFull):
            await app.enqueue("t", PAD)
        done_at = trio.current_time()
        while True:  # polls as time passes (autojump: no real waiting)
            try:
                await app.enqueue("t", PAD)
                break
            except StoreFull:
                await trio.sleep(0.5)
        waited = trio.current_time() - done_at
        assert 4.0 <= waited <= 5.0 + 2 * 1.0 + 1.0, waited  # retention, its bucket, a sync
        # What stays counted is the outcome records' allowance (kept an hour longer).
        assert acct.retained <= 512 * len(handles)
        n.cancel_scope.cancel()


async def test_a_counter_driven_negative_is_brought_back_to_zero() -> None:
    store = MemoryStore()
    keys = Keys("neg")
    await store.set(keys.accounting("live"), b"-50000")  # more ended than was counted in
    guard = StoreGuard(store, keys, memory_limit=100_000)
    await guard.accounting.sync()
    assert guard.accounting.live == 0
    await guard.accounting.sync()
    assert int(await store.get(keys.accounting("live")) or 0) == 0
    await broker(store, guard, ns="neg").enqueue("t", PAD)
    assert guard.accounting.live >= len(PAD)  # new bytes are not swallowed by the debt


async def test_without_a_limit_nothing_is_refused_or_counted() -> None:
    store = MemoryStore()
    guard = StoreGuard(store, Keys("g"))
    await broker(store, guard).enqueue_many([_req() for _ in range(100)])
    assert guard.accounting.accounted == 0 and await store.get(Keys("g").accounting("live")) is None


@pytest.fixture
async def evicting_guard() -> AsyncIterator[StoreGuard]:
    yield StoreGuard(MemoryStore(), Keys("c"), clock=trio_clock(), canary_every=5, canary_age=300)


async def test_a_lost_canary_is_reported_at_the_next_round(evicting_guard: StoreGuard, autojump_clock: Any) -> None:
    guard = evicting_guard
    for _ in range(10):  # canaries of 0..45 s of age
        await guard.check()
        await trio.sleep(5)
    assert len(guard._canaries) == 10 and guard.evicted == 0 and health([guard], ["n"]) == []
    await guard.store.delete(guard._canaries[0][1])  # what a full cache does to its coldest key
    await guard.check()
    assert guard.evicted == 1
    [reason] = health([guard], ["n"])
    assert "evicted keys" in reason and "1 canaries lost" in reason
    assert guard.status["evictions_detected"] == 1
    # Reported for an hour after the last loss, then healthy again (the count stays).
    await trio.sleep(EVICTION_REPORTED + 1)
    await guard.check()
    assert health([guard], ["n"]) == [] and guard.evicted == 1


async def test_canaries_are_retired_after_their_age(evicting_guard: StoreGuard, autojump_clock: Any) -> None:
    guard = evicting_guard
    for _ in range(200):
        await guard.check()
        await trio.sleep(5)
    assert len(guard._canaries) == 300 // 5 and guard.evicted == 0
    assert len(guard.store) == 300 // 5  # type: ignore[arg-type]


async def test_checking_canaries_leaves_them_cold(own_redis: Any, prefix: str) -> None:
    # The check is EXISTS, which does not refresh a key's access time: the
    # canaries stay the least recently used keys, first to go in an LRU cache.
    # Our own redis-server even on a Pogocache run: OBJECT IDLETIME shows the LRU clock.
    import redis

    checker = redis.Redis.from_url(own_redis.url, protocol=2)
    async with open_store(own_redis.url) as store:
        guard = StoreGuard(store, Keys(prefix.rstrip(":")), canary_every=0.2)
        await guard.check()
        first = guard._canaries[0][1]
        with trio.fail_after(10):
            while checker.object("idletime", first) < 2:  # the store's LRU clock
                await trio.sleep(0.2)
                await guard.check()  # checks `first` each round
        assert len(guard._canaries) >= 5 and guard.evicted == 0


def test_startup_and_doctor_say_what_makes_each_store_evict() -> None:
    assert eviction_advice("memory", None) is None
    assert "--maxmemory unlimited" in (eviction_advice("pogocache", 40 << 20) or "")
    assert "40 MiB" in (eviction_advice("pogocache", 40 << 20) or "")
    assert "maxmemory-policy noeviction" in (eviction_advice("redis", None) or "")
    assert "without --store-memory-limit" in (eviction_advice("redis", None) or "")


async def test_doctor_warns_that_a_redis_server_may_evict(resp_url: str) -> None:
    async with open_store(resp_url) as store:
        findings = await diagnose(store, "doc")
    [f] = [f for f in findings if f.check == "eviction"]
    assert f.level == "warn" and "noeviction" in f.message


def test_memory_limit_accepts_sizes_and_names_bad_values() -> None:
    assert Settings.load({"store_memory_limit": "512M"}, env={}).store_memory_limit == 512 << 20
    assert Settings.load({}, env={"NEXQ_STORE_MEMORY_LIMIT": "2G"}).store_memory_limit == 2 << 30
    with pytest.raises(ConfigError, match="--store-memory-limit"):
        Settings.load({"store_memory_limit": "lots"}, env={})
