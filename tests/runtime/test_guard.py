"""The store guard: refuse work near the memory limit, detect evictions."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from nexq.config import ConfigError, Settings
from nexq.errors import StoreFull
from nexq.hooks import Hooks
from nexq.keys import Keys
from nexq.queue import NodeBroker
from nexq.runtime.guard import Admission, StoreGuard
from nexq.store.memory import MemoryStore


async def test_enqueue_is_refused_over_the_limit_and_resumes_below() -> None:
    store = MemoryStore()
    guard = StoreGuard(store, Keys(), memory_limit=20_000)
    br = NodeBroker(store, hooks=Hooks([Admission([guard], ["node0"])]))
    await br.enqueue("t", "x" * 100)
    await guard.check()
    assert guard.refusing is None
    await store.set("ballast", b"x" * 50_000)
    await guard.check()
    with pytest.raises(StoreFull, match="over Nexq's limit"):
        await br.enqueue("t", 1)
    await store.delete("ballast")
    await guard.check()
    await br.enqueue("t", 2)
    assert guard.status["refusing"] is None and guard.status["memory_used"] > 0


async def test_an_evicted_canary_is_detected(autojump_clock: MockClock) -> None:
    store = MemoryStore()
    guard = StoreGuard(store, Keys("g"), canary_every=10, canary_age=60)
    await guard.check()
    [(_, first)] = guard._canaries
    await store.delete(first)  # what a full cache does to a cold key
    for _ in range(10):
        await trio.sleep(10)  # time passing (autojump) is what ages the canary
        await guard.check()
    assert guard.evicted == 1
    assert await store.get(first) is None


def test_memory_limit_accepts_sizes_and_names_bad_values() -> None:
    assert Settings.load({"store_memory_limit": "512M"}, env={}).store_memory_limit == 512 << 20
    assert Settings.load({}, env={"NEXQ_STORE_MEMORY_LIMIT": "2G"}).store_memory_limit == 2 << 30
    with pytest.raises(ConfigError, match="--store-memory-limit"):
        Settings.load({"store_memory_limit": "lots"}, env={})
