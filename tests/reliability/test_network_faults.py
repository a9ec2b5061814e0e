"""Latency, resets and a blackhole between Nexq and its store.

No process exits, nothing acknowledged is lost, and the API answers 503
JSON while the store cannot be reached.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio

from tests.faultproxy import FaultProxy
from tests.runtime.procs import spawn, stop, wait_http
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.slow

APP = "tests.runtime.sample_app:app"


async def post_task(client: httpx.AsyncClient, i: int) -> str | None:
    """The task id if the API acknowledged it, else None."""
    try:
        r = await client.post("/api/tasks", json={"type": "sleep", "payload": {"seconds": 0.01, "i": i}})
    except httpx.HTTPError:
        return None
    if r.status_code == 201:
        return str(r.json()["id"])
    assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable", r.text
    return None


async def test_latency_resets_and_blackhole_lose_nothing(own_redis: RedisServer, tmp_path: Path) -> None:
    proxy = FaultProxy(("127.0.0.1", own_redis.port))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(proxy.serve)
        args = ("--store", f"redis://127.0.0.1:{port}", "--app", APP, "--lease", "3",
                "--store-timeout", "1", "--concurrency", "4")
        api_port = free_port()
        proc = spawn("run", "--port", str(api_port), *args, log=str(tmp_path / "run.log"))
        try:
            # wait in a thread: the proxy runs on this trio loop
            await trio.to_thread.run_sync(wait_http, api_port)
            acked: list[str] = []
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=15) as client:

                async def produce(count: int) -> None:
                    for i in range(count):
                        if (tid := await post_task(client, i)) is not None:
                            acked.append(tid)

                await produce(100)
                proxy.latency = 0.005
                await produce(100)
                proxy.latency = 0.0
                for _ in range(3):
                    proxy.reset_all()
                    await produce(30)
                proxy.blackhole = True
                with trio.move_on_after(10):
                    while True:  # the API says 503 JSON, in bounded time
                        with trio.fail_after(8):
                            r = await client.get("/healthz")
                        if r.status_code == 503:
                            break
                assert r.status_code == 503 and r.json()["status"] != "ok"
                with trio.fail_after(8):
                    assert await post_task(client, -1) is None
                await trio.sleep(6)  # the outage itself: the store stays unreachable for 10 s in all
                proxy.blackhole = False
                proxy.reset_all()  # the held connections are gone for good
                await produce(50)
                assert proc.poll() is None  # nothing exited
                with trio.fail_after(120):
                    pending = set(acked)
                    while pending:
                        for tid in list(pending)[:50]:
                            r = await client.get(f"/api/tasks/{tid}")
                            if r.status_code == 200 and r.json()["status"] == "succeeded":
                                pending.discard(tid)
                        await trio.sleep(0.2)
            assert len(acked) >= 250
            assert proc.poll() is None
        finally:
            await trio.to_thread.run_sync(stop, proc)
        nursery.cancel_scope.cancel()
