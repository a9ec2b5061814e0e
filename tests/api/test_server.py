"""A real Hypercorn: port 0, Server-Sent Events and prompt, clean shutdown."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import trio

from nexq.api import serve_api
from nexq.runtime.runtime import Runtime


class Server:
    """serve_api in its own cancel scope, so a test can stop it alone."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()
        self.port = 0

    async def run(self, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self.scope:
                async with trio.open_nursery() as nursery:
                    self.port = await nursery.start(serve_api, self.runtime, "127.0.0.1", 0)
                    task_status.started(self.port)
        finally:
            self.stopped.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def server(runtime: Runtime, nursery: trio.Nursery) -> AsyncIterator[Server]:
    srv = Server(runtime)
    await nursery.start(srv.run)
    yield srv
    srv.scope.cancel()
    with trio.fail_after(10):
        await srv.stopped.wait()


async def read_events(resp: httpx.Response, into: list[tuple[str, Any]]) -> None:
    """Parse an SSE stream into (event, data) pairs until it ends."""
    kind, data = "message", None
    async for line in resp.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = orjson.loads(line[6:])
        elif line == "" and data is not None:
            into.append((kind, data))
            kind, data = "message", None


async def test_port_zero_reports_the_bound_port(server: Server) -> None:
    assert server.port > 0
    async with httpx.AsyncClient(base_url=server.url) as http:
        resp = await http.get("/healthz")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


async def test_binding_a_taken_port_raises(runtime: Runtime) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError), trio.fail_after(5):
            await serve_api(runtime, "127.0.0.1", taken.getsockname()[1])


async def test_event_stream_sends_task_events_and_stats(server: Server) -> None:
    events: list[tuple[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        async with http.stream("GET", "/api/events") as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_events, resp, events)
                with trio.fail_after(5):
                    while not any(k == "stats" for k, _ in events):
                        await trio.sleep(0.02)
                created = (await http.post("/api/tasks", json={"type": "sse.test"})).json()
                with trio.fail_after(5):
                    while not any(k == "task" and d.get("id") == created["id"] for k, d in events):
                        await trio.sleep(0.02)
                nursery.cancel_scope.cancel()
    task_event = next(d for k, d in events if k == "task")
    assert task_event == {"id": created["id"], "type": "sse.test", "queue": "default", "status": "pending"}
    stats = next(d for k, d in events if k == "stats")
    assert set(stats["counts"]) >= {"pending", "running", "dead"} and "store" in stats


@pytest.mark.slow  # listens for 3.5 s of stats events
async def test_stats_events_keep_coming(server: Server) -> None:
    events: list[tuple[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        async with http.stream("GET", "/api/events") as resp:
            with trio.move_on_after(3.5):
                await read_events(resp, events)
    assert sum(1 for k, _ in events if k == "stats") >= 3  # one at once, then ~1 per second


async def test_shutdown_ends_open_event_streams_promptly(runtime: Runtime) -> None:
    srv = Server(runtime)
    events: list[tuple[str, Any]] = []
    ended = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(srv.run)

        async def client() -> None:
            async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
                await http.get("/healthz")  # leaves an idle keep-alive connection too
                async with http.stream("GET", "/api/events") as resp:
                    await read_events(resp, events)  # returns when the server ends it
                ended.set()
                await trio.sleep_forever()  # keep the client (and its pool) open

        nursery.start_soon(client)
        with trio.fail_after(5):
            while not events:
                await trio.sleep(0.02)
        t0 = time.monotonic()
        srv.scope.cancel()
        with trio.fail_after(2):
            await srv.stopped.wait()
            await ended.wait()
        took = time.monotonic() - t0
        nursery.cancel_scope.cancel()
    assert took < 1.5, f"shutdown took {took:.2f} s"  # far below the 5 s grace
    assert runtime.events.subscribers == 0


async def test_shutdown_lets_an_in_flight_enqueue_finish(runtime: Runtime) -> None:
    srv = Server(runtime)
    batch = {"tasks": [{"type": "t", "payload": i} for i in range(5000)]}
    result: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(srv.run)

        async def client() -> None:
            async with httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
                resp = await http.post("/api/tasks/batch", json=batch)
                result["status"], result["n"] = resp.status_code, len(resp.json())

        nursery.start_soon(client)
        # Stop as soon as the batch is being written.
        seq = runtime.broker.keys.seq
        with trio.fail_after(10):
            while await runtime.store.get(seq) is None:
                await trio.sleep(0.001)
        srv.scope.cancel()
        with trio.fail_after(10):
            await srv.stopped.wait()
    assert result == {"status": 201, "n": 5000}
    page = await runtime.inspector.list(limit=500)
    # 5,000 index positions, and the next call's block reserved ahead (at most 64)
    assert len(page.tasks) == 500 and 5000 <= int(await runtime.store.get(seq) or 0) <= 5064
    assert sum(q["pending"] for q in await runtime.inspector.queue_stats()) == 5000


async def test_chunked_body_past_the_limit_is_413_and_stores_nothing(
    make_runtime: Any, nursery: trio.Nursery
) -> None:
    rt = make_runtime(max_payload_bytes=1024)
    srv = Server(rt)
    await nursery.start(srv.run)

    async def body() -> Any:  # no Content-Length: only the bytes received count
        yield b'{"type": "t", "payload": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as http:
        resp = await http.post("/api/tasks", content=body(), headers={"Content-Type": "application/json"})
        assert resp.status_code == 413
        assert resp.json()["error"]["code"] == "payload_too_large"
    assert await rt.store.get(rt.broker.keys.seq) is None
    srv.scope.cancel()
