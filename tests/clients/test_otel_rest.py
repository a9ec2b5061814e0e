"""REST callers carry a trace too: ``POST /api/tasks`` takes ``headers``
(a W3C traceparent, say), validated like the Python API's, and a traced
app's API continues the caller's trace in its producer span."""

from __future__ import annotations

from typing import Any

import pytest

import nexq
from nexq.api import create_app
from nexq.config import Settings
from nexq.otel import Tracing
from nexq.runtime.runtime import Runtime
from nexq.store import Store
from tests.clients.test_otel import recording

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_rest_headers_continue_the_callers_trace(store: Store, prefix: str) -> None:
    provider, exporter = recording()
    app = nexq.Nexq(middleware=[Tracing(provider)])
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store, app=app)
    client = create_app(rt).test_client()

    r = await client.post("/api/tasks", json={"type": "report", "headers": {"traceparent": CALLER}})
    assert r.status_code == 201, await r.get_json()
    task_id = (await r.get_json())["id"]
    [producer] = exporter.get_finished_spans()
    assert producer.name == "nexq.enqueue report"
    assert producer.context.trace_id == 0x0af7651916cd43dd8448eb211c80319c
    assert producer.parent is not None and producer.parent.span_id == 0xb7ad6b7169203331
    task = await rt.inspector.get(task_id)
    assert task is not None
    assert task.spec.headers["traceparent"].startswith(f"00-{producer.context.trace_id:032x}-"
                                                       f"{producer.context.span_id:016x}-")


@pytest.mark.parametrize(("headers", "field", "says"), [
    ({"traceparent": 1}, "headers.traceparent", "must be a string, not integer"),
    ({"": "x"}, "headers", "headers: name '' must not be empty"),
    ({"n" * 129: "x"}, "headers", f"headers: name {'n' * 40!r} must be at most 128 characters"),
    ("traceparent", "headers", "must be an object, not string"),
    ({f"h{i}": "x" for i in range(33)}, "headers", "must have at most 32 fields"),
    ({"baggage": "x" * 8186}, "body", "headers must hold at most 8192 characters of names and values"),
])
async def test_rest_refuses_bad_headers_naming_the_field(store: Store, prefix: str, headers: Any, field: str,
                                                         says: str) -> None:
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store)
    client = create_app(rt).test_client()
    r = await client.post("/api/tasks", json={"type": "report", "headers": headers})
    assert r.status_code == 400
    error = (await r.get_json())["error"]
    assert error["details"]["field"] == field
    assert says in error["message"]
    assert await rt.inspector.queues() == []  # nothing written
