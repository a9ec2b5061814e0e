"""--store-replicas on a real primary and replica: durable batches are
followed by WAIT, and too few acknowledgements are an error."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio

import nexq
from nexq import Nexq
from nexq.config import Settings
from nexq.errors import InvalidStoreURL, StoreUnavailable
from nexq.runtime.service import Service, run_service
from nexq.store import Batch, open_store
from tests.cli.helpers import APP, one_line_error
from tests.cli.helpers import nexq as run_nexq
from tests.sentinel_bed import command, primary_and_replica
from tests.servers import RedisServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    with primary_and_replica() as nodes:
        yield nodes


@contextmanager
def stopped(node: RedisServer) -> Iterator[None]:
    """``node`` frozen with SIGSTOP (it acknowledges nothing) for the ``with``."""
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(node.proc.pid, signal.SIGCONT)


async def test_a_durable_batch_waits_for_the_replica(pair: tuple[RedisServer, RedisServer]) -> None:
    primary, replica = pair
    # command_timeout 2 s: WAIT gives up after 1 s
    async with open_store(primary.url, replicas=1, command_timeout=2) as store:
        assert await store.execute(Batch(durable=True).set("r:a", b"1").get("r:a")) == [True, b"1"]
        assert command(replica.port, "GET", "r:a") == b"1"  # on the replica when the call returned
        with stopped(replica):
            with trio.fail_after(3):
                assert await store.execute(Batch().set("r:b", b"2")) == [True]  # not durable: no WAIT
                with pytest.raises(StoreUnavailable, match="only 0 of 1 replicas acknowledged"):
                    await store.execute(Batch(durable=True).set("r:c", b"3"))
        assert await store.execute(Batch(durable=True).set("r:d", b"4")) == [True]
    async with open_store(primary.url, replicas=2) as store:
        with pytest.raises(StoreUnavailable, match="only 1 of 2 replicas acknowledged"):
            await store.execute(Batch(durable=True).set("r:e", b"5"))


def test_client_enqueue_needs_its_replicas(pair: tuple[RedisServer, RedisServer]) -> None:
    primary, replica = pair
    client = nexq.Client(primary.url, namespace="rc", replicas=1)
    h = client.enqueue("echo", {"n": 1})
    assert command(replica.port, "EXISTS", f"rc:spec:{h.id}") == 1
    with pytest.raises(StoreUnavailable, match="only 1 of 2 replicas acknowledged"):
        nexq.Client(primary.url, namespace="rc", replicas=2).enqueue("echo", {"n": 2})

    async def aio() -> None:
        ac = nexq.AsyncClient(primary.url, namespace="rc", replicas=1)
        assert (await ac.enqueue("echo", {"n": 3})).id
        with pytest.raises(StoreUnavailable, match="only 1 of 2 replicas acknowledged"):
            await nexq.AsyncClient(primary.url, namespace="rc", replicas=2).enqueue("echo", {"n": 4})
    # In a thread of its own: the dashboard tests' session-wide Playwright keeps
    # an asyncio loop running in the main thread for the rest of the session.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, aio()).result()


def test_replicas_are_refused_on_stores_without_replication() -> None:
    with pytest.raises(InvalidStoreURL, match="pogocache:// has no replicas to wait for"):
        nexq.Client("pogocache://127.0.0.1:9401", replicas=1)
    with pytest.raises(ValueError, match="whole number >= 0"):
        nexq.AsyncClient("redis://127.0.0.1:6379", replicas=-1)

    async def open_pogocache() -> None:
        async with open_store("pogocache://127.0.0.1:9401", replicas=1):
            pass
    with pytest.raises(InvalidStoreURL, match="pogocache:// has no replicas"):
        trio.run(open_pogocache)
    line = one_line_error(run_nexq("worker", "--app", APP, "--store", "pogocache://127.0.0.1:9401",
                                   "--store-replicas", "1"), 2)
    assert "--store-replicas=1: pogocache:// has no replicas to wait for" in line
    line = one_line_error(run_nexq("run", "--store-replicas", "1"), 2)
    assert "--store-replicas=1: memory:// has no replicas to wait for" in line
    line = one_line_error(run_nexq("worker", "--app", APP, "--store", "redis://127.0.0.1:1",
                                   "--store-replicas", "-1"), 2)
    assert "--store-replicas=-1: must be a whole number >= 0" in line


def wait_calls(port: int) -> int:
    """How many WAIT commands the server on ``port`` has run."""
    stats = command(port, "INFO", "commandstats").decode()
    line = next((x for x in stats.splitlines() if x.startswith("cmdstat_wait:")), "cmdstat_wait:calls=0,")
    return int(line.split("calls=")[1].split(",")[0])


async def test_a_worker_waits_for_replicas_before_an_outcome_counts(pair: tuple[RedisServer, RedisServer]) -> None:
    primary, _ = pair
    ids = await trio.to_thread.run_sync(lambda: [
        h.id for h in nexq.Client(primary.url, namespace="rw").enqueue_many([("t", i) for i in range(5)])])
    before = wait_calls(primary.port)  # the enqueue sent none: no replicas asked for
    app = Nexq()

    @app.task("t", max_retries=0)
    async def t(payload: int) -> int:
        return payload

    settings = Settings(store=primary.url, namespace="rw", store_replicas=1, save_interval=0, shutdown_grace=1)
    async with trio.open_nursery() as nursery:
        svc: Service = await nursery.start(lambda task_status: run_service(
            settings, app, api=False, handle_signals=False, task_status=task_status))
        with trio.fail_after(20):
            while not all(x is not None and x.status.value == "succeeded"
                          for x in await svc.runtime.inspector.get_many(ids)):
                await trio.sleep(0.05)
        svc.stop.set()
    assert wait_calls(primary.port) > before  # the outcome decisions were followed by WAIT
