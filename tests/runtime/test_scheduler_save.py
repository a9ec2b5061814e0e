"""The scheduler asks a Pogocache store to SAVE every few seconds."""

from __future__ import annotations

import os

import trio

from nexq.queue import NodeBroker
from nexq.runtime.scheduler import Scheduler
from nexq.store import open_store
from tests.servers import RedisServer


async def test_periodic_save_persists_the_store(own_redis: RedisServer) -> None:
    # redis-server speaks RESP and has SAVE; the pogocache:// scheme makes
    # Nexq treat it as Pogocache (kind "pogocache"), which is what turns SAVE on.
    dump = os.path.join(own_redis.dir, "dump.rdb")
    assert not os.path.exists(dump)
    async with open_store(f"pogocache://127.0.0.1:{own_redis.port}") as store:
        assert store.kind == "pogocache"
        br = NodeBroker(store, namespace="save")
        await br.enqueue("t", "persist me")
        sched = Scheduler(br, save_interval=0.2)
        async with trio.open_nursery() as n:
            await n.start(sched.run)
            with trio.fail_after(10):
                while sched.saves < 3:
                    await trio.sleep(0.05)
            n.cancel_scope.cancel()
    assert os.path.getsize(dump) > 0
    with open(dump, "rb") as f:
        assert b"persist me" in f.read()


def save_calls(port: int) -> int:
    import redis

    with redis.Redis(port=port, protocol=2) as r:
        return int(r.info("commandstats").get("cmdstat_save", {}).get("calls", 0))


async def test_many_schedulers_save_once_per_interval(own_redis) -> None:  # type: ignore[no-untyped-def]
    # Four processes' schedulers on one Pogocache node: the `save` marker
    # (SET NX PX interval) lets one SAVE through per interval, not four.
    interval, window, n = 0.25, 2.0, 4
    url = f"pogocache://127.0.0.1:{own_redis.port}"
    async with open_store(url) as a, open_store(url) as b, open_store(url) as c, open_store(url) as d:
        scheds = [Scheduler(NodeBroker(s, namespace="save"), save_interval=interval) for s in (a, b, c, d)]
        before = save_calls(own_redis.port)
        async with trio.open_nursery() as nursery:
            for s in scheds:
                await nursery.start(s.run)
            await trio.sleep(window)  # the window being measured
            nursery.cancel_scope.cancel()
    saves = save_calls(own_redis.port) - before
    assert saves == sum(s.saves for s in scheds)
    # At most one per interval (+1 for the window's edges), and still about one per interval.
    assert window / interval - 2 <= saves <= window / interval + 1, saves
    assert n * (window / interval - 1) > window / interval + 1  # without the marker: ~n times as many
