"""Kept warm, as users meet it: after any pause, a lone enqueue from
``nexq.Client``, ``nexq.AsyncClient`` and the runtime (``POST /api/tasks``'s
core) is one round trip, because a background thread / task / agent renews
their reserved numbers and registry snapshot while they idle; closing stops
it. The clocks are shortened here (``quick_warmth``): blocks expire after
0.6 s instead of 3, the registry snapshot after 1 s instead of 30."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import trio

import nexq.aio_client
from nexq import AsyncClient, Client
from nexq.api.routes_tasks import enqueue_one
from nexq.client_keeper import KEEPER
from nexq.config import Settings
from nexq.queue import reservations
from nexq.runtime import registry_view, warm
from nexq.runtime.runtime import open_runtime
from nexq.store.aio import AioPool
from nexq.store.blocking import BlockingConnection
from nexq.store.resp import RespStore

pytestmark = pytest.mark.slow  # real pauses of a few seconds

PAUSE = 1.5  # past every shortened expiry below


@pytest.fixture
def quick_warmth(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in [("HOLD", 0.6), ("INDEX_HOLD", 1.2), ("WARM_AFTER", 0.3), ("INDEX_WARM", 0.5)]:
        monkeypatch.setattr(reservations, name, value)
    monkeypatch.setattr(registry_view, "REFRESH", 0.2)
    monkeypatch.setattr(registry_view, "RIDE_STALE", 1.0)
    for module in (reservations, nexq.aio_client, warm):  # the Client keeper reads reservations'
        monkeypatch.setattr(module, "WARM_TICK", 0.1)


class Trips:
    """Round trips made by the caller (not by a keeper in the background)."""

    def __init__(self) -> None:
        self.n = 0


@pytest.fixture
def thread_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[Trips]:
    trips, me, call = Trips(), threading.get_ident(), BlockingConnection.call

    def counted(self: BlockingConnection, commands: Any) -> Any:
        if threading.get_ident() == me:
            trips.n += 1
        return call(self, commands)

    monkeypatch.setattr(BlockingConnection, "call", counted)
    yield trips


def test_a_warm_client_enqueues_in_one_round_trip_after_any_pause(
        own_redis: Any, quick_warmth: None, thread_trips: Trips) -> None:
    r = redis.Redis.from_url(own_redis.url, protocol=2)
    with Client(own_redis.url, namespace="warm") as client:
        client.enqueue("noop", 0)
        tail = int(r.get("warm:lane:default:5:tail") or 0)
        trips = []
        for i in range(1, 3):
            time.sleep(PAUSE)
            before = thread_trips.n
            client.enqueue("noop", i)
            trips.append(thread_trips.n - before)
        assert trips == [1, 1]
        assert int(r.get("warm:lane:default:5:tail") or 0) > tail + 2  # the thread renewed the block meanwhile
        assert client in KEEPER and KEEPER.thread is not None and KEEPER.thread.is_alive()
        [q] = client.run(lambda node: node.inspector().queue_stats(["default"]))
        assert q["pending"] == 3
    assert client not in KEEPER  # close() took it off the keeper
    # Without the keeper the same pause costs more: the control for the above.
    with Client(own_redis.url, namespace="cold", keep_warm=False) as client:
        client.enqueue("noop", 0)
        time.sleep(PAUSE)
        before = thread_trips.n
        client.enqueue("noop", 1)
        assert thread_trips.n - before >= 2
        assert client not in KEEPER
    r.close()


def test_one_keeper_thread_serves_every_client_even_unclosed_ones(own_redis: Any) -> None:
    """A client made per request and never closed (an anti-pattern, but
    common) costs the keeper a weak reference, not a thread of its own."""
    refs = []
    for i in range(30):
        client = Client(own_redis.url, namespace="many")
        client.enqueue("noop", i)
        refs.append(weakref.ref(client))
    del client
    keepers = [t for t in threading.enumerate() if t.name == "nexq-client-warm"]
    assert len(keepers) == 1
    gc.collect()
    assert all(ref() is None for ref in refs)  # the keeper held none of them


def test_a_warm_async_client_enqueues_in_one_round_trip_after_any_pause(
        own_redis: Any, quick_warmth: None, monkeypatch: pytest.MonkeyPatch) -> None:
    trips, call = Trips(), AioPool._call

    async def counted(self: AioPool, commands: Any) -> Any:
        task = asyncio.current_task()
        if task is None or task.get_name() != "nexq-client-warm":
            trips.n += 1
        return await call(self, commands)

    monkeypatch.setattr(AioPool, "_call", counted)

    async def main() -> tuple[list[int], bool]:
        async with AsyncClient(own_redis.url, namespace="awarm") as client:
            await client.enqueue("noop", 0)
            await asyncio.sleep(PAUSE)
            before = trips.n
            await client.enqueue("noop", 1)
            out = [trips.n - before]
            keeper = client._warmer
            assert keeper is not None and not keeper.done()
        return out, keeper.done()

    out, ended = asyncio.run(main())
    assert out == [1] and ended  # aclose() ended the keeper


def test_a_warm_runtime_enqueues_in_one_round_trip_after_any_pause(
        own_redis: Any, quick_warmth: None, monkeypatch: pytest.MonkeyPatch) -> None:
    trips, execute = Trips(), RespStore.execute
    caller: list[trio.lowlevel.Task] = []

    async def counted(self: RespStore, batch: Any) -> Any:
        if trio.lowlevel.current_task() in caller:
            trips.n += 1
        return await execute(self, batch)

    monkeypatch.setattr(RespStore, "execute", counted)

    async def main() -> list[int]:
        caller.append(trio.lowlevel.current_task())
        async with open_runtime(Settings.load({"store": own_redis.url, "namespace": "rwarm"})) as rt:
            await enqueue_one(rt, {"type": "noop", "payload": 0})
            await trio.sleep(PAUSE)
            before = trips.n
            _, status = await enqueue_one(rt, {"type": "noop", "payload": 1})
            assert status == 201
            out = [trips.n - before]
            assert rt.warm is not None and rt.warm.refreshed >= 2
        return out

    assert trio.run(main) == [1]
    # Closed: the keeper stopped before the release, so the last block it
    # reserved was given back (tombstoned), not left for the claimers' grace.
    r = redis.Redis.from_url(own_redis.url, protocol=2)
    tail = int(r.get("rwarm:lane:default:5:tail") or 0)
    assert tail > 3 and r.get(f"rwarm:lane:default:5:s:{tail}") == b"~"
    r.close()
