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
