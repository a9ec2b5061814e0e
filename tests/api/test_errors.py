"""Bad input, limits and failures: always the JSON error shape, never HTML."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
from quart.typing import TestClientProtocol as Client

from nexq.api import create_app
from nexq.config import Settings
from nexq.runtime.runtime import Runtime
from nexq.store import open_store
from tests.servers import free_port

from .conftest import error_of


@pytest.mark.parametrize("body, field", [
    ({}, "type"),
    ({"type": ""}, "type"),
    ({"type": "   "}, "type"),
    ({"type": 5}, "type"),
    ({"type": "t", "priority": 10}, "priority"),
    ({"type": "t", "priority": -1}, "priority"),
    ({"type": "t", "priority": "urgent"}, "priority"),
    ({"type": "t", "priority": True}, "priority"),
    ({"type": "t", "priority": 4.5}, "priority"),
    ({"type": "t", "schedule_in": -1}, "schedule_in"),
    ({"type": "t", "schedule_in": "soon"}, "schedule_in"),
    ({"type": "t", "run_at": "next tuesday"}, "run_at"),
    ({"type": "t", "run_at": -5}, "run_at"),
    ({"type": "t", "run_at": 1, "schedule_in": 1}, "run_at"),
    ({"type": "t", "queue": "a:b"}, "queue"),
    ({"type": "t", "queue": "a,b"}, "queue"),
    ({"type": "t", "queue": ""}, "queue"),
    ({"type": "t", "queue": "mail\n"}, "queue"),
    ({"type": "t", "max_retries": -1}, "max_retries"),
    ({"type": "t", "max_retries": 1.5}, "max_retries"),
    ({"type": "t", "timeout": 0}, "timeout"),
    ({"type": "t", "unique_key": ""}, "unique_key"),
    ({"type": "t", "bogus": 1}, "bogus"),
    ({"type": "t", "task_id": "x"}, "task_id"),
    ([{"type": "t"}], "body"),
    ("t", "body"),
])
async def test_bad_task_body_is_400_naming_the_field(
    client: Client, body: Any, field: str
) -> None:
    resp = await client.post("/api/tasks", json=body)
    assert resp.status_code == 400, await resp.get_data()
    err = error_of(await resp.get_json())
    assert err["code"] == "invalid_request"
    assert err["details"]["field"] == field
    assert err["message"].startswith(f"{field}: ")
    assert (await (await client.get("/api/tasks")).get_json())["tasks"] == []


@pytest.mark.parametrize("raw", [b"{bad", b"{\"type\": NaN}", b"[1e400]", b"\xff\xfe", b"\"\\ud800\""])
async def test_malformed_json_is_400(client: Client, raw: bytes) -> None:
    resp = await client.post("/api/tasks", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    err = error_of(await resp.get_json())
    assert err["code"] == "invalid_json" and err["details"] == {"field": "body"}


async def test_missing_body_is_400(client: Client) -> None:
    resp = await client.post("/api/tasks", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert error_of(await resp.get_json())["details"]["field"] == "body"


async def test_body_that_is_not_declared_json_is_415(client: Client) -> None:
    resp = await client.post("/api/tasks", data=b'{"type": "t"}', headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert error_of(await resp.get_json())["code"] == "unsupported_media_type"


async def test_oversized_payload_is_413_and_stores_nothing(
    make_runtime: Callable[..., Runtime],
) -> None:
    rt = make_runtime(max_payload_bytes=1024)
    client = create_app(rt).test_client()
    seq_before = await rt.store.get(rt.broker.keys.seq)
    resp = await client.post("/api/tasks", json={"type": "t", "payload": "x" * 2000})
    assert resp.status_code == 413
    err = error_of(await resp.get_json())
    assert err["code"] == "payload_too_large" and err["details"]["field"] == "payload"
    # A body far past the limit is refused by its Content-Length alone.
    resp = await client.post("/api/tasks", json={"type": "t", "payload": "x" * 200_000})
    assert resp.status_code == 413
    assert error_of(await resp.get_json())["details"]["limit"] == 1024 + 64 * 1024
    # In a batch, one oversized payload refuses the whole batch.
    batch = {"tasks": [{"type": "t"}, {"type": "t", "payload": "y" * 2000}]}
    resp = await client.post("/api/tasks/batch", json=batch)
    assert resp.status_code == 413
    assert error_of(await resp.get_json())["details"]["field"] == "tasks[1].payload"
    assert await rt.store.get(rt.broker.keys.seq) == seq_before
    assert (await (await client.get("/api/tasks")).get_json())["tasks"] == []
    assert await rt.inspector.queues() == []
    # Just under the limit is fine.
    ok = await client.post("/api/tasks", json={"type": "t", "payload": "z" * 1000})
    assert ok.status_code == 201


async def test_unknown_route_is_404_json(client: Client) -> None:
    for path in ("/nope", "/api/nope", "/static/missing.js", "/static/../pyproject.toml"):
        resp = await client.get(path)
        assert resp.status_code == 404, path
        assert resp.mimetype == "application/json"
        assert error_of(await resp.get_json())["code"] == "not_found"


async def test_wrong_method_is_405_json_with_allow(client: Client) -> None:
    resp = await client.put("/api/tasks")
    assert resp.status_code == 405 and resp.mimetype == "application/json"
    err = error_of(await resp.get_json())
    assert err["code"] == "method_not_allowed"
    assert "POST" in resp.headers["Allow"] and "POST" in err["details"]["allowed"]
    assert (await client.get("/api/dead/purge")).status_code == 405


async def test_unexpected_error_is_500_without_traceback(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(runtime)

    async def broken() -> None:
        raise RuntimeError("secret internal detail")

    app.add_url_rule("/api/broken", "broken", broken)
    resp = await app.test_client().get("/api/broken")
    assert resp.status_code == 500
    text = (await resp.get_data()).decode()
    err = error_of(await resp.get_json())
    assert err == {"code": "internal_error", "message": "internal server error", "details": None}
    assert "secret" not in text and "Traceback" not in text
    assert any("secret internal detail" in str(r.exc_info) for r in caplog.records if r.exc_info)


async def test_store_down_is_503_everywhere(prefix: str) -> None:
    # A real RESP store URL nobody listens on: every command fails fast.
    async with open_store(f"redis://127.0.0.1:{free_port()}") as store:
        rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store)
        client = create_app(rt).test_client()
        with trio.fail_after(30):
            health = await client.get("/healthz")
            assert health.status_code == 503
            body = await health.get_json()
            assert body["status"] == "unavailable" and body["error"]["code"] == "store_unavailable"
            for method, path, kw in [("POST", "/api/tasks", {"json": {"type": "t"}}),
                                     ("GET", "/api/tasks", {}), ("GET", "/api/stats", {}),
                                     ("GET", "/api/queues", {}), ("GET", "/metrics", {})]:
                resp = await client.open(path, method=method, **kw)
                assert resp.status_code == 503, path
                assert error_of(await resp.get_json())["code"] == "store_unavailable"
