"""examples/otel_app.py across processes: a request to the FastAPI app
under uvicorn and the `nexq worker` running its handler, each printing its
spans (one JSON line each), make one trace on redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.polling import poll
from tests.runtime.procs import ROOT, spawn, stop
from tests.servers import free_port

pytestmark = pytest.mark.slow


def spans(log: Path) -> dict[str, dict[str, Any]]:
    """The spans a process printed, by name (each name once in this test)."""
    found = {}
    for line in log.read_text().splitlines():
        if line.startswith('{"name"'):
            span = json.loads(line)
            found[span["name"]] = span
    return found


def test_the_example_traces_a_request_through_the_worker_process(resp_url: str, tmp_path: Path) -> None:
    env = {"NEXQ_STORE": resp_url, "NEXQ_NAMESPACE": f"otel{os.getpid()}{time.monotonic_ns() % 10**6}"}
    worker_log, web_log = tmp_path / "worker.log", tmp_path / "web.log"
    worker = spawn("worker", "--app", "examples.otel_app:app", env=env, log=str(worker_log))
    port = free_port()
    with open(web_log, "wb") as out:
        web = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.otel_app:api", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": ROOT}, stdout=out, stderr=subprocess.STDOUT)
    try:
        def post() -> httpx.Response | None:
            try:
                return httpx.post(f"http://127.0.0.1:{port}/signup", json={"email": "ada@example.com"}, timeout=10)
            except httpx.TransportError:
                return None  # not listening yet

        r = poll(post)
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        handler = poll(lambda: spans(worker_log).get("nexq.process send_welcome"))
        web_spans = poll(lambda: (s := spans(web_log)).get("POST /signup") and s)
    finally:
        stop(web)
        stop(worker)
    inside = spans(worker_log)["render welcome email"]
    producer, server = web_spans["nexq.enqueue send_welcome"], web_spans["POST /signup"]
    trace_id = server["context"]["trace_id"]
    assert {s["context"]["trace_id"] for s in (producer, handler, inside)} == {trace_id}
    assert inside["parent_id"] == handler["context"]["span_id"]
    assert handler["parent_id"] == producer["context"]["span_id"]  # across the store, in the task's headers
    assert producer["parent_id"] in {s["context"]["span_id"] for s in web_spans.values()}
    assert (handler["kind"], producer["kind"]) == ("SpanKind.CONSUMER", "SpanKind.PRODUCER")
    assert handler["attributes"] == {
        "messaging.system": "nexq", "messaging.destination.name": "emails", "messaging.message.id": task_id,
        "messaging.operation.type": "process", "nexq.task.type": "send_welcome", "nexq.task.id": task_id,
        "nexq.task.attempt": 1, "nexq.task.outcome": "succeeded"}
