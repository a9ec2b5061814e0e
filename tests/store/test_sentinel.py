"""redis+sentinel:// on a real Sentinel bed (tests/sentinel_bed.py): the
stores find the primary, and follow a failover without being rebuilt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

import nexq
from nexq.errors import StoreAuthError, StoreUnavailable
from nexq.store import Batch, open_store
from tests.sentinel_bed import NAME, SentinelBed, command, sentinel_bed
from tests.servers import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bed() -> Iterator[SentinelBed]:
    with sentinel_bed() as b:
        yield b


async def test_the_sentinels_name_the_primary(bed: SentinelBed) -> None:
    primary = bed.primary()
    async with open_store(bed.url) as store:
        assert await store.set("s:found", b"yes")
    assert command(primary.port, "GET", "s:found") == b"yes"
    h = await trio.to_thread.run_sync(lambda: nexq.Client(bed.url, namespace="sd").enqueue("echo", 1))
    assert command(primary.port, "EXISTS", f"sd:spec:{h.id}") == 1
    ah = await trio.to_thread.run_sync(
        lambda: asyncio.run(nexq.AsyncClient(bed.url, namespace="sd").enqueue("echo", 2)))
    assert command(primary.port, "EXISTS", f"sd:spec:{ah.id}") == 1


async def test_no_primary_says_what_each_sentinel_answered(bed: SentinelBed) -> None:
    hosts = ",".join(f"127.0.0.1:{p}" for p in bed.sentinel_ports)
    async with open_store(f"redis+sentinel://{hosts}/nosuch") as store:
        with pytest.raises(StoreUnavailable, match="does not know a primary named 'nosuch'"):
            await store.get("k")
    dead = free_port()
    async with open_store(f"redis+sentinel://127.0.0.1:{dead}/{NAME}") as store:
        with pytest.raises(StoreUnavailable, match=f"sentinel 127.0.0.1:{dead}: cannot connect"):
            await store.get("k")


async def recovers(write: Callable[[], Any], limit: float = 30) -> float:
    """Seconds until ``write`` (run in a thread) succeeds; every failure on
    the way must be StoreUnavailable (an outage, nothing else)."""
    start = time.monotonic()
    while True:
        try:
            await trio.to_thread.run_sync(write)
            return time.monotonic() - start
        except StoreUnavailable:
            if time.monotonic() - start > limit:
                raise
            await trio.sleep(0.1)


async def test_every_store_follows_a_failover_without_being_rebuilt(bed: SentinelBed) -> None:
    bed.wait_ready()  # a replica the sentinels can promote
    client = nexq.Client(bed.url, namespace="sf")
    loop = asyncio.new_event_loop()  # the AsyncClient stays on this loop
    aclient = nexq.AsyncClient(bed.url, namespace="sf")
    async with open_store(bed.url) as store, open_store(bed.url, replicas=1) as durable:
        # Acknowledged by the replica before the primary dies: must survive.
        await durable.execute(Batch(durable=True).set("sf:kept", b"1"))
        kept = await trio.to_thread.run_sync(lambda: nexq.Client(bed.url, namespace="sf", replicas=1)
                                             .enqueue("echo", "kept").id)
        await trio.to_thread.run_sync(client.enqueue, "echo", "warm")
        await trio.to_thread.run_sync(loop.run_until_complete, aclient.enqueue("echo", "warm"))
        dead = bed.kill_primary()
        try:
            token = trio.lowlevel.current_trio_token()

            def trio_write() -> None:
                trio.from_thread.run(store.set, "sf:after", b"2", trio_token=token)

            took = [await recovers(trio_write), await recovers(lambda: client.enqueue("echo", "after")),
                    await recovers(lambda: loop.run_until_complete(aclient.enqueue("echo", "after")))]
            new = bed.primary()
            assert new.port != dead.port
            assert command(new.port, "GET", "sf:kept") == b"1"
            assert command(new.port, "EXISTS", f"sf:spec:{kept}") == 1
            assert command(new.port, "GET", "sf:after") == b"2"
            assert max(took) < 30
        finally:
            await trio.to_thread.run_sync(bed.restore, dead)
            await trio.to_thread.run_sync(loop.run_until_complete, aclient.aclose())
            loop.close()
            await trio.to_thread.run_sync(client.close)
        # The replica is back: replica-acknowledged writes succeed again.
        await durable.execute(Batch(durable=True).set("sf:again", b"3"))


async def test_a_demoted_primary_is_left_for_the_new_one(bed: SentinelBed) -> None:
    bed.wait_ready()  # a replica the sentinels can promote
    async with open_store(bed.url) as store:
        await store.set("sg:before", b"1")  # connected to the primary
        old = bed.primary()
        assert command(bed.sentinel_ports[0], "SENTINEL", "FAILOVER", NAME) == b"OK"
        new = bed.wait_failover(old)
        # What the sentinels do to the old primary some seconds later (it
        # takes writes until then: Sentinel's split-brain window), now.
        assert command(old.port, "REPLICAOF", "127.0.0.1", new.port) == b"OK"
        with pytest.raises(StoreUnavailable, match=r"no longer the primary \(READONLY\)"):
            await store.set("sg:after", b"2")
        await store.set("sg:after", b"2")  # the same store, on the new primary
        assert command(new.port, "GET", "sg:after") == b"2"


async def test_passwords_for_the_sentinels_and_for_the_data_nodes() -> None:
    with sentinel_bed(password="data-pw", sentinel_password="sent-pw") as guarded:
        async with open_store(guarded.url, replicas=1) as store:
            assert await store.execute(Batch(durable=True).set("sp:k", b"v")) == [True]
        h = await trio.to_thread.run_sync(lambda: nexq.Client(guarded.url, namespace="sp").enqueue("echo", 1))
        assert command(guarded.primary().port, "EXISTS", f"sp:spec:{h.id}") == 1
        async with open_store(guarded.url.replace("sent-pw", "wrong")) as store:
            with pytest.raises(StoreUnavailable, match="authentication failed"):
                await store.get("sp:k")
        async with open_store(guarded.url.replace("data-pw", "wrong")) as store:
            with pytest.raises(StoreAuthError):
                await store.get("sp:k")
