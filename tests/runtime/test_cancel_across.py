"""A cancel made in one process stops the handler running in another at once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.runtime.procs import api, nexq_run, spawn, stop

pytestmark = pytest.mark.slow

APP = "tests.topologies.app:app"


def wait_for(what: str, check, limit: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.02)
    raise TimeoutError(what)


def test_cancel_over_the_api_stops_a_handler_in_another_process_at_once(
        resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    common = ["--store", resp_url, "--namespace", ns, "--app", APP]
    # The default lease (30 s) beats every 10 s: only the doorbell can stop it sooner.
    worker = spawn("worker", *common, log=str(tmp_path / "worker.log"))
    try:
        with nexq_run("--no-worker", *common, log=str(tmp_path / "api.log")) as (_, port):
            [w] = wait_for("the worker registers", lambda: api(port, "GET", "/api/workers")["workers"])
            t = api(port, "POST", "/api/tasks", json={"type": "hang", "payload": {"dir": str(tmp_path)}})
            running = wait_for("the task runs", lambda: (
                task if (task := api(port, "GET", f"/api/tasks/{t['id']}"))["status"] == "running" else None))
            asked = time.time()
            api(port, "POST", f"/api/tasks/{t['id']}/cancel")
            stamp = tmp_path / f"{t['id']}.cancelled"
            wait_for("the handler is cancelled", stamp.exists, limit=15)
            stopped_after = float(stamp.read_text()) - asked
            print(f"handler stopped {stopped_after * 1000:.1f} ms after the cancel request")
            assert stopped_after < 0.3, stopped_after

            task = api(port, "GET", f"/api/tasks/{t['id']}")
            assert task["status"] == "cancelled"
            [attempt] = task["attempts"]
            assert attempt["outcome"] == "cancelled"
            assert attempt["worker"] == w["id"] == running["attempts"][0]["worker"]
            assert attempt["started_at"] == pytest.approx(running["attempts"][0]["started_at"], abs=0.01)
            assert attempt["started_at"] < asked <= attempt["finished_at"]
    finally:
        stop(worker)
    assert os.path.exists(stamp)
