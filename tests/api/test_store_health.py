"""/healthz, /metrics and /api/stats report evictions and refused work."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import trio

from nexq.api import create_app
from nexq.runtime.runtime import Runtime


def metric(text: str, name: str) -> float:
    m = re.search(rf'^{name}\{{node="[^"]*"\}} (\S+)$', text, re.MULTILINE)
    assert m, f"{name} missing from:\n{text}"
    return float(m.group(1))


async def test_a_lost_canary_shows_on_healthz_metrics_and_stats(runtime: Runtime, client: Any) -> None:
    guard = runtime.guard
    await guard.check()  # writes the first canary
    assert (await (await client.get("/healthz")).get_json())["status"] == "ok"
    assert metric(await (await client.get("/metrics")).get_data(as_text=True),
                  "nexq_store_evictions_detected_total") == 0
    [(_, canary)] = guard._canaries
    await runtime.store.delete(canary)  # behind Nexq's back, as an evicting cache would
    guard._next_canary = trio.current_time()  # the next round is due now (else in 5 s)
    await guard.check()
    body = await (await client.get("/healthz")).get_json()
    assert body["status"] == "degraded" and body["evictions_detected"] == 1
    [why] = body["reasons"]
    assert "evicted keys" in why and "tasks may have been lost" in why
    text = await (await client.get("/metrics")).get_data(as_text=True)
    assert metric(text, "nexq_store_evictions_detected_total") == 1
    store = (await (await client.get("/api/stats")).get_json())["store"]
    assert store["evictions_detected"] == 1 and store["reasons"] == [why]


async def test_refused_work_shows_on_healthz_metrics_and_stats(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime(store_memory_limit=60_000)
    client = create_app(rt).test_client()
    task = {"type": "t", "payload": "x" * 2000}
    codes = [(await client.post("/api/tasks", json=task)).status_code for _ in range(30)]
    assert 201 in codes and codes[-1] == 503 and codes == sorted(codes)  # accepted, then refused
    body = await (await client.get("/healthz")).get_json()
    assert body["status"] == "degraded" and any("refused" in why for why in body["reasons"]), body
    text = await (await client.get("/metrics")).get_data(as_text=True)
    assert metric(text, "nexq_admission_refusing") == 1
    assert metric(text, "nexq_admission_refused_total") == codes.count(503)
    assert metric(text, "nexq_admission_budget_bytes") == 48_000
    assert 40_000 < metric(text, "nexq_admission_accounted_bytes") <= 48_000
    [adm] = (await (await client.get("/api/stats")).get_json())["store"]["admission"]
    assert adm["refusing"] and adm["budget_bytes"] == 48_000
