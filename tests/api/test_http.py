"""Auth, security headers, the dashboard's static files and /openapi.json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from quart.typing import TestClientProtocol as Client

from nexq.api import create_app
from nexq.api.app import find_static_dir
from nexq.api.schemas import TASK_BATCH, TASK_CREATE
from nexq.api.schemas_ops import TASK_SEARCH_QUERY
from nexq.runtime.runtime import Runtime

from .conftest import error_of

TOKEN = "s3cret-token"


@pytest.fixture
def secured(make_runtime: Callable[..., Runtime]) -> Client:
    return create_app(make_runtime(api_token=TOKEN)).test_client()


@pytest.mark.parametrize("method, path", [
    ("GET", "/api/tasks"), ("POST", "/api/tasks"), ("GET", "/api/stats"), ("GET", "/api/events"),
    ("GET", "/metrics"), ("GET", "/api/nope"), ("POST", "/api/dead/purge"),
])
@pytest.mark.parametrize("auth", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"])
async def test_token_is_required_on_api_and_metrics(
    secured: Client, method: str, path: str, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    resp = await secured.open(path, method=method, headers=headers)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert error_of(await resp.get_json())["code"] == "unauthorized"
    assert "Set-Cookie" not in resp.headers


async def test_right_token_is_let_in(secured: Client) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await secured.get("/api/tasks", headers=auth)).status_code == 200
    assert (await secured.get("/metrics", headers=auth)).status_code == 200
    resp = await secured.post("/api/tasks", json={"type": "t"}, headers=auth)
    assert resp.status_code == 201


async def test_health_dashboard_and_schema_stay_open(secured: Client) -> None:
    for path in ("/healthz", "/", "/openapi.json"):
        assert (await secured.get(path)).status_code == 200, path
    doc = await (await secured.get("/openapi.json")).get_json()
    assert doc["paths"]["/api/tasks"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]


async def test_no_cors_headers(client: Client) -> None:
    resp = await client.get("/api/tasks", headers={"Origin": "https://evil.example"})
    assert resp.status_code == 200
    assert not any(h.lower().startswith("access-control-") for h in resp.headers.keys())
    pre = await client.options("/api/tasks", headers={"Origin": "https://evil.example",
                                                      "Access-Control-Request-Method": "POST"})
    assert not any(h.lower().startswith("access-control-") for h in pre.headers.keys())


async def test_cross_site_writes_are_refused(client: Client) -> None:
    resp = await client.post("/api/tasks", json={"type": "t"}, headers={"Origin": "https://evil.example"})
    assert resp.status_code == 403 and error_of(await resp.get_json())["code"] == "forbidden"
    for site in ("cross-site", "same-site"):
        resp = await client.post("/api/queues/default/pause", headers={"Sec-Fetch-Site": site})
        assert resp.status_code == 403
    same = await client.post("/api/tasks", json={"type": "t"}, headers={"Origin": "http://localhost"})
    assert same.status_code == 201
    # Behind a proxy that rewrites Host, the browser's own verdict counts.
    proxied = await client.post("/api/tasks", json={"type": "t"},
                                headers={"Origin": "https://nexq.example", "Sec-Fetch-Site": "same-origin"})
    assert proxied.status_code == 201
    assert len((await (await client.get("/api/tasks")).get_json())["tasks"]) == 2


async def test_placeholder_page_has_security_headers(runtime: Runtime, tmp_path: Path) -> None:
    client = create_app(runtime, static_dir=tmp_path).test_client()  # empty: no index.html
    resp = await client.get("/")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert b"Nexq" in await resp.get_data()


async def test_static_files_are_served_from_the_dashboard_dir(runtime: Runtime, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>dash</title><script src=app.js></script>")
    (tmp_path / "app.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("no")
    client = create_app(runtime, static_dir=tmp_path).test_client()
    index = await client.get("/")
    assert b"<title>dash</title>" in await index.get_data()
    assert "frame-ancestors 'none'" in index.headers["Content-Security-Policy"]
    js = await client.get("/static/app.js")
    assert js.status_code == 200 and await js.get_data() == b"console.log(1)"
    assert js.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static//etc/passwd"):
        resp = await client.get(path)
        assert resp.status_code == 404 and resp.mimetype == "application/json", path


def test_the_dashboard_is_found_as_the_package_data_nexq_static() -> None:
    # The test venv holds an editable install, where nexq.static is the
    # project's static/ (a wheel's copy is checked by hand; see the commit).
    found = find_static_dir()
    assert found == Path(__file__).resolve().parents[2] / "static"
    assert (found / "index.html").is_file()


async def test_openapi_documents_the_validating_schemas(client: Client) -> None:
    doc = await (await client.get("/openapi.json")).get_json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    expected = {
        ("/api/tasks", "post"), ("/api/tasks/batch", "post"), ("/api/tasks", "get"),
        ("/api/tasks/{id}", "get"), ("/api/tasks/{id}/cancel", "post"), ("/api/tasks/{id}/retry", "post"),
        ("/api/tasks/{id}", "delete"), ("/api/queues", "get"), ("/api/queues/{name}/pause", "post"),
        ("/api/queues/{name}/resume", "post"), ("/api/dead", "get"), ("/api/dead/requeue", "post"),
        ("/api/dead/purge", "post"), ("/api/workers", "get"), ("/api/stats", "get"), ("/api/cron", "get"), ("/api/types", "get"), ("/api/nodes", "get"),
        ("/api/tasks/bulk", "post"), ("/api/types/stats", "get"), ("/api/events", "get"), ("/healthz", "get"), ("/metrics", "get"),
    }
    assert {(p, m) for p, ops in paths.items() for m in ops} == expected
    def body_of(path: str) -> dict[str, object]:
        return paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert body_of("/api/tasks") == TASK_CREATE and body_of("/api/tasks/batch") == TASK_BATCH
    params = {p["name"]: p["schema"] for p in paths["/api/tasks"]["get"]["parameters"]}
    assert params == TASK_SEARCH_QUERY
    assert "413" in paths["/api/tasks"]["post"]["responses"]
    assert "security" not in paths["/api/tasks"]["post"]  # no token configured


async def test_head_of_the_event_stream_does_not_open_a_stream(client: Client, runtime: Runtime) -> None:
    with trio.fail_after(5):
        resp = await client.head("/api/events")
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    assert runtime.events.subscribers == 0
