"""nexq.AsyncClient: the asyncio producer, on the session's redis-server."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from typing import Any

import pytest

from nexq import AsyncClient, Client, Nexq, StoreUnavailable, TaskFailed
from nexq.errors import InvalidStoreURL, NexqError
from nexq.queue.lanes import Pushed
from nexq.task import Status
from tests.clients.conftest import trio_worker
from tests.clients.test_client import BAD, registered_worker


def test_100_concurrent_enqueues_under_asyncio_run(resp_url: str, ns: str) -> None:
    async def main() -> list[Any]:
        async with AsyncClient(resp_url, namespace=ns) as client:
            handles = await asyncio.gather(*[client.enqueue("t", {"i": i}) for i in range(100)])
            statuses = await asyncio.gather(*[h.status() for h in handles])
            return [(h.id, h.created, s) for h, s in zip(handles, statuses)]

    got = asyncio.run(main())
    assert len({i for i, _, _ in got}) == 100
    assert all(created and status is Status.PENDING for _, created, status in got)
    with Client(resp_url, namespace=ns) as sync:  # the other client sees the same tasks
        tasks = sync.run(lambda node: node.inspector().get_many([i for i, _, _ in got]))
        assert sorted(t.spec.payload["i"] for t in tasks if t is not None) == list(range(100))


def test_enqueue_many_get_cancel_and_result(resp_url: str, ns: str) -> None:
    app = Nexq(resp_url, namespace=ns)

    @app.task("double", queue="math")
    async def double(payload: int) -> int:
        return payload * 2

    async def main() -> None:
        async with AsyncClient(app=app) as client:
            later = await client.enqueue("double", 1, delay=60)
            assert (await later.info()).spec.queue == "math"  # the app's handler defaults
            assert await later.status() is Status.SCHEDULED
            assert await later.cancel() and not await client.cancel(later.id)
            with pytest.raises(TaskFailed, match="cancelled"):
                await later.result(timeout=5)
            assert await client.get("no-such-task") is None
            many = await client.enqueue_many([("double", i) for i in range(50)] + [("other", 0, {"queue": "q"})])
            assert len({h.id for h in many}) == 51
            assert sum(await asyncio.gather(*[h.result(timeout=30) for h in many[:50]])) == 2 * sum(range(50))
            with pytest.raises(TimeoutError, match="pending"):
                await many[-1].result(timeout=0.2)  # nobody serves queue q

    with trio_worker(app, resp_url, ns, queues=["math"]):
        asyncio.run(main())


@pytest.mark.parametrize(("body", "options", "field"), BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)])
def test_bad_requests_fail_as_with_the_blocking_client(resp_url: str, ns: str, body: dict[str, Any],
                                                       options: dict[str, Any], field: str) -> None:
    async def main() -> str:
        async with AsyncClient(resp_url, namespace=ns) as client:
            with pytest.raises(ValueError) as caught:
                await client.enqueue("t", None, **options)
            return str(caught.value)

    with Client(resp_url, namespace=ns) as sync, pytest.raises(ValueError) as blocking:
        sync.enqueue("t", None, **options)
    assert asyncio.run(main()) == str(blocking.value)


def test_store_unavailable_when_the_server_is_gone_or_frozen(own_redis: Any, ns: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXQ_STORE_TIMEOUT", "0.5")

    async def main() -> None:
        client = AsyncClient(own_redis.url, namespace=ns)
        h = await client.enqueue("t")
        own_redis.proc.send_signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(StoreUnavailable, match="no reply within 0.5 s"):
                await client.enqueue("t")
            assert time.monotonic() - start < 2
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        assert await h.status() is Status.PENDING
        own_redis.stop()
        with pytest.raises(StoreUnavailable):
            await client.enqueue("t")
        await client.aclose()
        with pytest.raises(StoreUnavailable, match="closed"):
            await client.get(h.id)

    asyncio.run(main())


def test_one_client_per_event_loop_and_app_enqueue_points_here(resp_url: str, ns: str) -> None:
    client = AsyncClient(resp_url, namespace=ns)
    asyncio.run(client.enqueue("t"))
    with pytest.raises(RuntimeError, match="one AsyncClient per event loop"):
        asyncio.run(client.enqueue("t"))

    async def app_enqueue() -> None:
        Nexq(resp_url, namespace=ns).enqueue("t")  # type: ignore[unused-coroutine]

    with pytest.raises(NexqError, match="from asyncio use nexq.AsyncClient"):
        asyncio.run(app_enqueue())
    with pytest.raises(InvalidStoreURL, match="embedded"):
        AsyncClient("memory://")


def test_a_push_rings_the_workers_doorbells(resp_url: str, ns: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bell:
        bell.bind(("127.0.0.1", 0))
        bell.settimeout(5)
        with registered_worker(resp_url, ns, wake=bell.getsockname()):

            async def main() -> str:
                async with AsyncClient(resp_url, namespace=ns) as client:
                    return (await client.enqueue("t")).id

            task_id = asyncio.run(main())
            ring = bell.recv(1024)
            assert ring[:1] == b"!" and Pushed.decode(ring[1:]) == Pushed("default", 5, 1, task_id, 1)
