"""The producers' read of the worker registry (types and doorbells
together): one round trip while nobody registered or left."""

from __future__ import annotations

from nexq.keys import Keys
from nexq.runtime.registry import WorkerRegistry
from nexq.store import Store
from tests.queue.test_enqueue_reservations import Counted


async def test_a_registry_snapshot_is_one_round_trip_until_it_changes(store: Store, prefix: str) -> None:
    keys = Keys(prefix.rstrip(":"))
    workers = [WorkerRegistry(store, keys, publication=lambda: {"types": {}}) for _ in range(2)]
    for i, w in enumerate(workers):
        await w.register({"id": f"w{i}", "doorbell": f"127.0.0.1:{9000 + i}"})
    counted = Counted(store)
    reader = WorkerRegistry(counted, keys)
    first = await reader.snapshot()
    assert [i["id"] for i in first.infos] == ["w0", "w1"]
    assert [p["worker"] for p in first.publications] == ["w0", "w1"]
    counted.round_trips = 0
    again = await reader.snapshot(first)
    assert counted.round_trips == 1 and again == first
    late = WorkerRegistry(store, keys, publication=lambda: {"types": {}})
    await late.register({"id": "w2"})
    await workers[0].deregister("w0")
    counted.round_trips = 0
    changed = await reader.snapshot(again)
    assert counted.round_trips > 1  # the slots moved: read in full
    assert [i["id"] for i in changed.infos] == ["w1", "w2"]
    assert [p["worker"] for p in changed.publications] == ["w1", "w2"]
    counted.round_trips = 0
    assert await reader.snapshot(changed) == changed and counted.round_trips == 1
