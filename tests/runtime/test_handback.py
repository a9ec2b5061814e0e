"""Shutdown hand-backs do not use up retries, and the attempt shown says so."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import trio

from nexq.app import Nexq
from nexq.task import Status
from tests.runtime.procs import spawn, stop

pytestmark = pytest.mark.slow

APP = "tests.topologies.app:app"


async def test_a_task_handed_back_twice_still_shows_its_first_attempt(
        resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    common = ["--store", resp_url, "--namespace", ns, "--app", APP, "--shutdown-grace", "0.2"]
    gate = tmp_path / "open"
    app = Nexq(resp_url, namespace=ns)
    async with app.connect():
        h = await app.enqueue("gate", {"open": str(gate)}, max_retries=0)
        for n in (1, 2):  # two workers stopped while it runs
            w = spawn("worker", *common, log=str(tmp_path / f"w{n}.log"))
            with trio.fail_after(30):
                while (t := await h.info()).status is not Status.RUNNING:
                    await trio.sleep(0.05)
            assert t.attempts[-1].number == n
            assert await trio.to_thread.run_sync(stop, w, signal.SIGTERM) == 0
            t = await h.info()
            assert t.status is Status.PENDING and t.attempt == 1, (t.status, t.attempt)
            assert t.attempts[-1].outcome is not None and t.attempts[-1].outcome.value == "handed_back"
        gate.touch()
        w = spawn("worker", *common, log=str(tmp_path / "w3.log"))
        try:
            assert await h.result(timeout=30) == w.pid
        finally:
            stop(w)
        t = await h.info()
    shown = t.to_json()  # what the API answers
    assert shown["status"] == "succeeded"
    assert shown["attempt"] == 1 <= shown["max_retries"] + 1
    assert [a["outcome"] for a in shown["attempts"]] == ["handed_back", "handed_back", "succeeded"]
    assert [a["number"] for a in shown["attempts"]] == [1, 2, 3]  # keys stay unique per attempt
