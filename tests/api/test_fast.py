"""The enqueue routes served in front of Quart (nexq.api.fast) answer as
Quart does: the same requests sent to an app as create_app makes it and to
its Quart app alone (each on a namespace of its own) give the same status,
headers and body, ids and times aside."""

from __future__ import annotations

from typing import Any

import hypothesis
import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart.typing import TestClientProtocol as Client
from quart_trio import QuartTrio

from nexq.api import create_app
from nexq.api.fast import FastEnqueue
from nexq.api.schemas import TASK_CREATE
from nexq.config import Settings
from nexq.runtime.runtime import Runtime
from nexq.store import Store

TOKEN = "s3cret"
TIMES = {"created_at", "scheduled_at", "expires_at"}  # set from the clock: compared within a minute
Answer = tuple[int, dict[str, str], Any]


def pair(store: Store, prefix: str, **options: Any) -> tuple[Client, Client]:
    """Test clients of two apps with the same settings on namespaces of
    their own: as create_app makes it, and its Quart app alone."""
    apps: list[QuartTrio] = []
    for suffix in ("fast", "quart"):
        apps.append(create_app(Runtime.build(Settings(namespace=prefix + suffix, **options), store)))
    front = apps[1].asgi_app
    assert isinstance(front, FastEnqueue)
    apps[1].asgi_app = front.quart  # type: ignore[method-assign,assignment]
    return apps[0].test_client(), apps[1].test_client()


async def answer(client: Client, path: str, body: bytes, headers: dict[str, str]) -> Answer:
    with trio.fail_after(10):
        resp = await client.post(path, data=body, headers=headers)
        data = await resp.get_data()
    assert int(resp.headers["Content-Length"]) == len(data)
    shown = {k.lower(): v for k, v in resp.headers.items() if k.lower() != "content-length"}
    return resp.status_code, shown, orjson.loads(data)


def same(a: Any, b: Any, key: str = "") -> bool:
    """Equal, but for task ids and clock-set times (within a minute)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], k) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, key) for x, y in zip(a, b))
    if key == "id" and isinstance(a, str) and isinstance(b, str):
        return len(a) == len(b)
    if key in TIMES and isinstance(a, float) and isinstance(b, float):
        return abs(a - b) < 60
    return bool(a == b)


async def compare(fast: Client, quart: Client, path: str, body: bytes,
                  headers: dict[str, str] | None = None) -> Answer:
    """Send the request to both; assert they answer alike; the answer."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    ours = await answer(fast, path, body, headers)
    theirs = await answer(quart, path, body, headers)
    assert ours[0] == theirs[0] and ours[1] == theirs[1], (path, body[:200], ours, theirs)
    assert same(ours[2], theirs[2]), (path, body[:200], ours[2], theirs[2])
    return ours


def dump(value: Any) -> bytes:
    return orjson.dumps(value)


CASES: list[tuple[str, Any, dict[str, str]]] = [
    ("/api/tasks", {"type": "t"}, {}),
    ("/api/tasks", {"type": "email", "payload": {"to": "a@b.c"}, "priority": "high", "queue": "mail",
                    "max_retries": 2, "timeout": 1.5, "unique_key": "u1", "schedule_in": 60,
                    "expires_in": 120, "webhook": "https://example.com/hook"}, {}),
    ("/api/tasks", {"type": "email", "unique_key": "u1"}, {}),  # the live holder: 200
    ("/api/tasks", {"type": "t", "run_at": "2999-01-01T00:00:00Z"}, {}),
    ("/api/tasks", {"type": "t", "run_at": "1900-01-01T00:00:00Z"}, {}),
    ("/api/tasks/batch", {"tasks": [{"type": "a", "payload": 1}, {"type": "b", "unique_key": "u2"},
                                    {"type": "c", "unique_key": "u2"}]}, {}),
    ("/api/tasks/batch", {"tasks": []}, {}),
    ("/api/tasks", {}, {}),
    ("/api/tasks", {"type": ""}, {}),
    ("/api/tasks", {"type": "t", "bogus": 1, "priority": 10}, {}),
    ("/api/tasks", [{"type": "t"}], {}),
    ("/api/tasks", {"type": "t", "depends_on": ["no-such-task"]}, {}),
    ("/api/tasks", {"type": "t", "webhook": "http://127.0.0.1/hook"}, {}),
    ("/api/tasks", {"type": "t", "schedule_in": 1, "expires_in": 0.5}, {}),
    ("/api/tasks/batch", {"tasks": [{"type": "a"}, {"type": "b", "max_retries": -1}]}, {}),
    ("/api/tasks/batch", {"tasks": [{"type": "a"}, {"type": "b", "depends_on": ["nope"]}]}, {}),
    ("/api/tasks", {"type": "t", "payload": "x" * 2000}, {}),  # payload past max_payload_bytes: 413
    ("/api/tasks", {"type": "t"}, {"Content-Type": "text/plain"}),
    ("/api/tasks", {"type": "t"}, {"Content-Type": "application/json; charset=utf-8"}),
    ("/api/tasks", {"type": "t"}, {"Content-Type": "Application/Vnd.Nexq+JSON"}),
    ("/api/tasks", {"type": "t"}, {"Origin": "https://evil.example"}),
    ("/api/tasks", {"type": "t"}, {"Origin": "http://localhost"}),
    ("/api/tasks", {"type": "t"}, {"Origin": "null"}),
    ("/api/tasks/batch", {"tasks": [{"type": "t"}]}, {"Sec-Fetch-Site": "cross-site"}),
    ("/api/tasks", {"type": "t"}, {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}),
]


@pytest.mark.parametrize("path, body, headers", CASES)
async def test_the_front_answers_as_quart(store: Store, prefix: str, path: str, body: Any,
                                          headers: dict[str, str]) -> None:
    fast, quart = pair(store, prefix, max_payload_bytes=1000)
    for _ in range(2):  # the second time: a unique key is held, a queue known
        await compare(fast, quart, path, dump(body), headers)


@pytest.mark.parametrize("raw", [b"", b"   ", b"{bad", b'{"type": NaN}', b"\xff\xfe", b'"\\ud800"', b"null"])
async def test_raw_bodies_answer_as_quart(store: Store, prefix: str, raw: bytes) -> None:
    fast, quart = pair(store, prefix)
    status, _, body = await compare(fast, quart, "/api/tasks", raw)
    assert status in (400, 415) and set(body) == {"error"}


async def test_bodies_past_the_limit_answer_as_quart(store: Store, prefix: str) -> None:
    fast, quart = pair(store, prefix, max_payload_bytes=1000)
    status, _, body = await compare(fast, quart, "/api/tasks", b" " * (70 * 1024))
    assert status == 413 and body["error"]["details"]["field"] == "body"


@pytest.mark.parametrize("auth", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}"])
async def test_the_token_is_checked_as_quart_does(store: Store, prefix: str, auth: str | None) -> None:
    fast, quart = pair(store, prefix, api_token=TOKEN)
    headers = {"Authorization": auth} if auth else {}
    for path, body in (("/api/tasks", {"type": "t"}), ("/api/tasks/batch", {"tasks": [{"type": "t"}]})):
        status, shown, _ = await compare(fast, quart, path, dump(body), headers)
        assert status == (201 if auth == f"Bearer {TOKEN}" else 401)
        assert ("www-authenticate" in shown) == (status == 401)


async def test_the_front_skips_quart(runtime: Runtime) -> None:
    """Quart's request hooks never see an enqueue; every other request goes through Quart."""
    app = create_app(runtime)
    seen: list[str] = []

    @app.before_request
    async def record() -> None:
        from quart import request

        seen.append(f"{request.method} {request.path}")

    client = app.test_client()
    assert (await client.post("/api/tasks", json={"type": "t"})).status_code == 201
    assert (await client.post("/api/tasks/batch", json={"tasks": [{"type": "t"}]})).status_code == 201
    assert (await client.get("/api/tasks")).status_code == 200
    assert (await client.put("/api/tasks", json={"type": "t"})).status_code == 405
    assert seen == ["GET /api/tasks", "PUT /api/tasks"]


@pytest.mark.slow  # a few dozen generated bodies, each enqueued twice
async def test_generated_bodies_answer_as_quart(store: Store, prefix: str) -> None:
    fast, quart = pair(store, prefix, max_payload_bytes=2000)
    keys = sorted(TASK_CREATE["properties"])
    scalars = st.none() | st.booleans() | st.integers(-5, 20) | st.floats(-1e3, 1e11, allow_nan=False) \
        | st.sampled_from(["", "t", "low", "high", "mail", "a:b", "2030-01-01T00:00:00Z", "cancel", "x" * 3000])
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.sampled_from([*keys, "x"]), inner, max_size=3), max_leaves=6)
    bodies = st.fixed_dictionaries({"type": st.sampled_from(["t", "", 5])}, optional={
        k: values for k in keys if k != "type"}) | values
    batches = st.builds(lambda ts: {"tasks": ts}, st.lists(bodies, max_size=3))

    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate])
    @given(path=st.sampled_from(["/api/tasks", "/api/tasks/batch"]), body=bodies | batches)
    def check(path: str, body: Any) -> None:
        trio.from_thread.run(compare, fast, quart, path, dump(body))

    with trio.fail_after(120):
        await trio.to_thread.run_sync(check)
