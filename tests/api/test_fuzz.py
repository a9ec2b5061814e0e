"""Property-based runs against /openapi.json: schemathesis generates requests
from the same schemas that validate them, sent through the Quart test client.

Bounded: a few dozen examples per operation and mode (NEXQ_FUZZ_EXAMPLES to
raise it), derandomized so CI is reproducible. Checks: no 5xx anywhere, every
error is the JSON error shape, schema-valid task bodies are accepted (the
validator agrees with the published schema), and the validator agrees with
an independent JSON Schema implementation (jsonschema_rs) on generated data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import hypothesis
import jsonschema_rs
import orjson
import pytest
import requests
import schemathesis
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart.typing import TestClientProtocol as Client
from schemathesis.generation import GenerationMode

from nexq.api.schemas import QUEUE_FILTER, TASK_BATCH, TASK_CREATE
from nexq.api.validation import validate

EXAMPLES = int(os.environ.get("NEXQ_FUZZ_EXAMPLES", "40"))
SKIP = {"/api/events"}  # an endless stream: covered by test_server.py
REQUEST_KEYS = ("method", "url", "headers", "params", "json", "data")


def _settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate])


async def fetch(client: Client, prep: requests.PreparedRequest) -> tuple[int, str, bytes]:
    url = urlsplit(prep.url or "")
    path = url.path + (f"?{url.query}" if url.query else "")
    body = prep.body.encode() if isinstance(prep.body, str) else (prep.body or b"")
    with trio.fail_after(10):
        resp = await client.open(path, method=prep.method or "GET", headers=dict(prep.headers), data=body)
        return resp.status_code, resp.mimetype or "", await resp.get_data()


def run_operation(
    operation: Any, mode: GenerationMode, send: Callable[..., Any], failures: list[str]
) -> None:
    """Drive one operation with ``EXAMPLES`` generated cases (in a worker thread)."""

    @_settings(EXAMPLES)
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        kw = case.as_transport_kwargs(base_url="http://localhost")
        prep = requests.Request(**{k: v for k, v in kw.items() if k in REQUEST_KEYS}).prepare()
        status, mimetype, body = trio.from_thread.run(send, prep)
        where = f"{mode.value} {prep.method} {prep.url} body={prep.body!r:.300} -> {status} {body[:300]!r}"
        if status >= 500:
            failures.append(f"5xx: {where}")
        elif status >= 400:
            parsed = orjson.loads(body) if mimetype == "application/json" else None
            if not (isinstance(parsed, dict) and set(parsed) == {"error"}):
                failures.append(f"bad error shape: {where}")
        path = case.operation.path
        # Checks the schema cannot express, which the schema's descriptions
        # state: private webhook targets, a deadline before the run time.
        semantic = status == 400 and any(
            m in body for m in (b"NEXQ_WEBHOOK_ALLOW_PRIVATE", b"would expire", b"depends_on: no task"))
        if mode is GenerationMode.POSITIVE and path in ("/api/tasks", "/api/tasks/batch") \
                and case.method == "POST" and status not in (200, 201, 413) and not semantic:
            failures.append(f"schema-valid body refused: {where}")

    check()


@pytest.mark.slow  # generated requests to every route: seconds of work
async def test_generated_requests_never_fail_the_server(client: Client) -> None:
    doc = await (await client.get("/openapi.json")).get_json()
    for path in SKIP:
        doc["paths"].pop(path)
    schema = schemathesis.openapi.from_dict(doc)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 18
    failures: list[str] = []

    async def send(prep: requests.PreparedRequest) -> tuple[int, str, bytes]:
        return await fetch(client, prep)

    def run_all() -> None:
        for op in operations:
            spec = doc["paths"][op.path][op.method.lower()]
            # Only query strings and bodies can be made invalid (a path
            # segment is any non-empty string).
            has_inputs = "requestBody" in spec or any(p["in"] == "query" for p in spec.get("parameters", []))
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[: 2 if has_inputs else 1]:
                run_operation(op, mode, send, failures)

    with trio.fail_after(120):
        await trio.to_thread.run_sync(run_all)
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize("schema", [TASK_CREATE, TASK_BATCH, QUEUE_FILTER], ids=["task", "batch", "queue"])
def test_validator_agrees_with_jsonschema_rs(schema: dict[str, Any]) -> None:
    reference = jsonschema_rs.Draft202012Validator(schema, validate_formats=False)
    keys = sorted(schema["properties"])
    scalars = st.none() | st.booleans() | st.integers(-20, 20) | st.floats(-1e3, 1e13, allow_nan=False) \
        | st.sampled_from(["", " ", "low", "high", "a:b", "q", "2030-01-01T00:00:00Z", "\u001c", "\ufeff"]) \
        | st.text(max_size=5)
    names = st.sampled_from([*keys, "x"])
    json_values = st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=4),
        max_leaves=8,
    )
    objects = st.dictionaries(names, json_values, max_size=6)
    values = objects | st.builds(lambda ts: {"tasks": ts}, st.lists(objects, max_size=3)) | json_values

    @_settings(400)
    @given(value=values)
    def check(value: Any) -> None:
        ours = not validate(schema, value)
        # Date-time formats are asserted by us only, so compare on the rest.
        if any(isinstance(v, str) for v in _run_ats(value)):
            return
        assert ours == reference.is_valid(value), (value, validate(schema, value))

    check()


def _run_ats(value: Any) -> list[Any]:
    if isinstance(value, dict):
        out = [value["run_at"]] if "run_at" in value else []
        for v in value.values():
            out += _run_ats(v)
        return out
    if isinstance(value, list):
        return [x for v in value for x in _run_ats(v)]
    return []
