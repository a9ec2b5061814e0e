"""ClusterStore on a real redis-server cluster (3 primaries + 3 replicas):
routing, split batches, MOVED and ASK during a slot move, fan-out, and the
queue runtime on a cluster URL (its partitions each in one slot)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import trio

from nexq import Nexq
from nexq.config import Settings
from nexq.runtime.service import run_service
from nexq.store import Batch
from nexq.store.cluster import ClusterStore, open_cluster_store
from nexq.store.cluster_slots import key_slot
from tests.cluster_servers import RedisCluster, redis_cli, redis_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed; run `make test` to install it")
    with redis_cluster(3, 1) as c:
        yield c


def direct(port: int) -> redis.Redis:
    return redis.Redis(port=port, protocol=2)


def node_id(port: int) -> str:
    return redis_cli(port, "cluster", "myid").strip()


def keys_on_distinct_primaries(cluster: RedisCluster, prefix: str) -> dict[int, str]:
    """One key per primary port."""
    out: dict[int, str] = {}
    i = 0
    while len(out) < cluster.primaries:
        key = f"{prefix}{i}"
        out.setdefault(cluster.owner(key_slot(key)), key)
        i += 1
    return out


async def test_each_key_is_written_on_its_slots_primary(cluster: RedisCluster, prefix: str) -> None:
    keys = keys_on_distinct_primaries(cluster, prefix)
    async with open_cluster_store(cluster.url) as store:
        assert isinstance(store, ClusterStore)
        for port, key in keys.items():
            assert await store.set(key, f"on {port}")
    for port, key in keys.items():
        assert direct(port).get(key) == f"on {port}".encode()  # the owner has it, no redirect


async def test_batches_and_mget_split_by_node_answer_in_order(cluster: RedisCluster, prefix: str) -> None:
    keys = list(keys_on_distinct_primaries(cluster, prefix).values())
    async with open_cluster_store(cluster.url) as store:
        answers = await store.execute(
            Batch().set(keys[0], b"0").set(keys[1], b"1").incrby(keys[2], 5).mget([keys[2], "nope" + prefix, keys[0],
                                                                                  keys[1]])
            .exists(*keys).delete(keys[0], keys[1]).get(keys[0]))
        assert answers == [True, True, 5, [b"5", None, b"0", b"1"], 3, 2, None]
        many = [f"{prefix}m{i}" for i in range(200)]
        await store.execute(Batch().mget(many))
        for i in range(0, 200, 50):
            await store.set(many[i], str(i))
        got = await store.mget(many)
        assert [v for v in got if v is not None] == [str(i).encode() for i in range(0, 200, 50)]
        assert got[50] == b"50" and got[51] is None


async def test_ping_info_and_save_reach_every_primary(cluster: RedisCluster, prefix: str) -> None:
    async with open_cluster_store(cluster.url) as store:
        await store.set(prefix + "k", b"v")
        assert await store.ping() > 0
        info = await store.info()
        assert len(info["primaries"].split(",")) == 3 and int(info["keys"]) >= 1
        await store.save()  # answered OK by all three


def move_slot(cluster: RedisCluster, slot: int, src: int, dst: int, keys: list[str] = ()) -> None:  # type: ignore[assignment]
    """Move ``slot`` (and ``keys`` in it) from primary ``src`` to ``dst``, as a reshard does."""
    redis_cli(dst, "cluster", "setslot", str(slot), "importing", node_id(src))
    redis_cli(src, "cluster", "setslot", str(slot), "migrating", node_id(dst))
    if keys:
        redis_cli(src, "migrate", "127.0.0.1", str(dst), "", "0", "5000", "keys", *keys)
    for port in cluster.ports[: cluster.primaries]:
        redis_cli(port, "cluster", "setslot", str(slot), "node", node_id(dst))


async def test_moved_after_a_slot_moves_updates_the_map(cluster: RedisCluster, prefix: str) -> None:
    key = prefix + "{moved}"
    slot = key_slot(key)
    src = cluster.owner(slot)
    dst = next(p for p in cluster.ports[: cluster.primaries] if p != src)
    async with open_cluster_store(cluster.url) as store:
        await store.set(key, b"before")
        assert store.map.node_for(slot) == f"127.0.0.1:{src}"
        move_slot(cluster, slot, src, dst, [key])
        # The store's map is stale: the old owner answers MOVED, the store follows.
        assert await store.get(key) == b"before"
        assert store.map.node_for(slot) == f"127.0.0.1:{dst}"
        assert await store.set(key, b"after")
    assert direct(dst).get(key) == b"after"


async def test_ask_during_a_migration_reaches_the_moved_key(cluster: RedisCluster, prefix: str) -> None:
    moved, stays = prefix + "{ask}a", prefix + "{ask}b"
    slot = key_slot(moved)
    src = cluster.owner(slot)
    dst = next(p for p in cluster.ports[: cluster.primaries] if p != src)
    async with open_cluster_store(cluster.url) as store:
        await store.execute(Batch().set(moved, b"m").set(stays, b"s"))
        redis_cli(dst, "cluster", "setslot", str(slot), "importing", node_id(src))
        redis_cli(src, "cluster", "setslot", str(slot), "migrating", node_id(dst))
        try:
            redis_cli(src, "migrate", "127.0.0.1", str(dst), "", "0", "5000", "keys", moved)
            with pytest.raises(redis.exceptions.AskError):
                direct(src).get(moved)
            # ASK: ASKING + GET on the importing node; the map still names the source.
            assert await store.get(moved) == b"m"
            assert await store.get(stays) == b"s"
            assert store.map.node_for(slot) == f"127.0.0.1:{src}"

            # A multi-key command over a half-moved slot gets TRYAGAIN: the
            # store retries it, and it succeeds once the migration ends.
            async def finish() -> None:
                await trio.to_thread.run_sync(lambda: redis_cli(
                    src, "migrate", "127.0.0.1", str(dst), "", "0", "5000", "keys", stays))
                for port in cluster.ports[: cluster.primaries]:
                    await trio.to_thread.run_sync(redis_cli, port, "cluster", "setslot", str(slot), "node",
                                                  node_id(dst))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(finish)
                assert await store.mget([moved, stays]) == [b"m", b"s"]
        finally:
            if cluster.owner(slot) != dst:
                redis_cli(src, "migrate", "127.0.0.1", str(dst), "", "0", "5000", "keys", stays)
                for port in cluster.ports[: cluster.primaries]:
                    redis_cli(port, "cluster", "setslot", str(slot), "node", node_id(dst))
        assert await store.get(stays) == b"s"  # MOVED now


async def test_the_runtime_on_a_cluster_url_keeps_each_partition_in_one_slot(cluster: RedisCluster,
                                                                             prefix: str) -> None:
    ns = prefix.rstrip(":")
    app = Nexq()

    @app.task("t")
    async def t(ctx: Any, payload: Any) -> Any:
        return payload

    settings = Settings(store=cluster.url + "?partitions=6", namespace=ns, save_interval=0, concurrency=10,
                        shutdown_grace=1)
    async with trio.open_nursery() as nursery:
        svc = await nursery.start(lambda task_status: run_service(
            settings, app, api=False, handle_signals=False, task_status=task_status))
        assert len(svc.runtime.node_names) == 6
        handles = [await app.enqueue("t", i, queue=f"q{i % 6}") for i in range(60)]
        with trio.fail_after(20):
            while True:
                tasks = await svc.runtime.inspector.get_many([h.id for h in handles])
                if all(x is not None and x.status.value == "succeeded" for x in tasks):
                    break
                await trio.sleep(0.05)
        svc.stop.set()
    assert [x.result for x in tasks] == list(range(60))  # type: ignore[union-attr]
    # Every key of the namespace carries a partition's tag, and the tasks
    # went to more than one primary.
    used: set[int] = set()
    for port in cluster.ports[: cluster.primaries]:
        keys = [k.decode() for k in direct(port).scan_iter(match=f"*{ns}*", count=1000)]
        assert all(k.startswith("{p") for k in keys)
        if any(f"{ns}:spec:" in k for k in keys):
            used.add(port)
    assert len(used) >= 2


async def test_client_and_async_client_on_a_cluster_url(cluster: RedisCluster, prefix: str) -> None:
    """nexq.Client (blocking driver) and nexq.AsyncClient (asyncio driver)
    enqueue onto the queues' partitions, as the runtime places them, and
    follow the tasks the runtime's workers run."""
    import asyncio

    from nexq import AsyncClient, Client

    ns = prefix.rstrip(":")
    app = Nexq()

    @app.task("double")
    async def double(ctx: Any, payload: Any) -> Any:
        return payload * 2

    settings = Settings(store=cluster.url, namespace=ns, save_interval=0, concurrency=10, shutdown_grace=1)

    def sync_side() -> list[Any]:
        with Client(cluster.url, namespace=ns) as client:
            handles = [client.enqueue("double", i, queue=f"q{i % 6}") for i in range(12)]
            results = [h.result(timeout=20) for h in handles]
            later = client.enqueue("double", 1, delay=60)
            assert client.cancel(later.id) and later.status().value == "cancelled"
            return results

    async def async_side() -> list[Any]:
        async with AsyncClient(cluster.url, namespace=ns) as client:
            handles = await asyncio.gather(*[client.enqueue("double", i, queue=f"a{i % 6}") for i in range(12)])
            return [await h.result(timeout=20) for h in handles]

    async with trio.open_nursery() as nursery:
        svc = await nursery.start(lambda task_status: run_service(
            settings, app, api=False, handle_signals=False, task_status=task_status))
        assert await trio.to_thread.run_sync(sync_side) == [i * 2 for i in range(12)]
        assert await trio.to_thread.run_sync(lambda: asyncio.run(async_side())) == [i * 2 for i in range(12)]
        placed = {svc.runtime.broker.node_of(f"q{i}") for i in range(6)}
        assert len(placed) > 1  # the queues spread over partitions
        svc.stop.set()


def test_a_client_on_a_cluster_url_keeps_each_partitions_producer_warm(
        cluster: RedisCluster, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The keeper renews the reserved numbers of every partition the client
    produced to (``PlannedCluster.producer.refresh``), and what it enqueues
    after the pause is all there."""
    import threading
    import time

    from nexq import Client
    from nexq.queue import reservations
    from nexq.store.blocking import BlockingConnection

    monkeypatch.setattr(reservations, "WARM_AFTER", 0.2)
    monkeypatch.setattr(reservations, "WARM_TICK", 0.05)
    ns = prefix.rstrip(":")
    queues = [f"w{i}" for i in range(4)]
    with Client(cluster.url, namespace=ns) as client:
        for q in queues:
            client.enqueue("noop", q, queue=q)
        nodes = client._brokers[-1].nodes  # type: ignore[attr-defined]
        used = [n for n in nodes if n.producer.reservations.blocks]
        assert len(used) > 1  # the queues went to several partitions
        first = {id(n): {c: b.next for c, b in n.producer.reservations.blocks.items() if c} for n in used}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = {id(n): {c: b.next for c, b in n.producer.reservations.blocks.items() if c} for n in used}
            if all(now[k].keys() == first[k].keys() and all(now[k][c] > first[k][c] for c in first[k])
                   for k in first):
                break  # every partition's lane blocks were replaced by later numbers
            time.sleep(0.05)
        else:
            raise AssertionError("the keeper did not renew every partition's lane blocks")
        for q in queues:
            client.enqueue("noop", q + "-after", queue=q)
        stats = client.run(lambda node: node.inspector().queue_stats(queues))
        assert [s["pending"] for s in stats] == [2, 2, 2, 2]
        # No write carries the registry's re-read on a cluster (it lives on
        # one partition): the keeper reads it each second, so a lone enqueue
        # after a pause is one round trip there too.
        trips, me, call = [0], threading.get_ident(), BlockingConnection.call

        def counted(self: BlockingConnection, commands: Any, *rest: Any) -> Any:
            if threading.get_ident() == me:
                trips[0] += 1
            return call(self, commands, *rest)

        monkeypatch.setattr(BlockingConnection, "call", counted)
        monkeypatch.setattr(reservations, "WARM_AFTER", 2.0)  # the real pace: blocks renewed every 2 s
        out = []
        for pause in (1.5, 3.5, 4.5):
            time.sleep(pause)
            before = trips[0]
            client.enqueue("noop", pause, queue=queues[0])
            out.append(trips[0] - before)
        assert out == [1, 1, 1]
    with Client(cluster.url, namespace=ns + "c", keep_warm=False) as cold:  # the control
        cold.enqueue("noop", 0, queue=queues[0])
        time.sleep(1.5)
        before = trips[0]
        cold.enqueue("noop", 1, queue=queues[0])
        assert trips[0] - before == 2  # the registry read first


async def test_a_runtime_on_a_cluster_url_keeps_its_registry_snapshot_young(
        cluster: RedisCluster, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes to other partitions carry no registry re-read, so the
    runtime's keeper reads it before calls would have to (shortened clocks;
    the test runs the keeper's look, ``once()``, itself)."""
    from nexq.api.routes_tasks import enqueue_one
    from nexq.runtime import registry_view, warm
    from nexq.runtime.runtime import open_runtime
    from nexq.store.cluster import NodePool

    monkeypatch.setattr(warm, "WARM_TICK", 3600.0)
    monkeypatch.setattr(warm, "VIEW_RENEW", 0.5)
    monkeypatch.setattr(registry_view, "RIDE_STALE", 1.0)
    calls, call = [0], NodePool.call

    async def counted(self: NodePool, commands: Any) -> Any:
        calls[0] += 1
        return await call(self, commands)

    monkeypatch.setattr(NodePool, "call", counted)
    queues = [f"k{i}" for i in range(4)]

    async def trips(payload: Any) -> list[int]:
        out = []
        for q in queues:
            before = calls[0]
            _, status = await enqueue_one(rt, {"type": "noop", "payload": payload, "queue": q})
            assert status == 201
            out.append(calls[0] - before)
        return out

    async with open_runtime(Settings(store=cluster.url, namespace=prefix.rstrip(":"))) as rt:
        assert rt.warm is not None
        await trips(0)
        await trio.sleep(1.2)  # past RIDE_STALE
        await rt.warm.once()  # the keeper's look at its tick
        assert await trips(1) == [1, 1, 1, 1]
        await trio.sleep(1.2)  # the control: no keeper's look
        assert (await trips(2))[0] == 2  # the registry read first
