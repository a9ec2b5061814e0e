"""``nexq top``: the live terminal view of queues, rates and workers."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from nexq.app import Nexq
from nexq.cli.top import CLEAR, frame, render
from tests.cli.helpers import clean_env, nexq, one_line_error, wait_for
from tests.runtime.procs import ROOT, nexq_cmd, nexq_run, stop


def fill(url: str, namespace: str) -> None:
    """3 tasks pending on default, 2 pending and 1 scheduled on emails."""

    async def go() -> None:
        app = Nexq(url, namespace=namespace)
        async with app.connect():
            await app.enqueue_many([("send", i) for i in range(3)])
            await app.enqueue_many([("mail", i, {"queue": "emails"}) for i in range(2)])
            await app.enqueue("mail", 9, queue="emails", delay=600)

    trio.run(go)


def row(text: str, name: str) -> list[str]:
    [line] = [ln for ln in text.splitlines() if ln.split()[:1] == [name]]
    return line.split()


@pytest.mark.slow
def test_once_prints_the_queue_rows_of_a_store(resp_url: str, prefix: str) -> None:
    ns = prefix.rstrip(":")
    fill(resp_url, ns)
    r = nexq("top", "--once", "--store", resp_url, "--namespace", ns, "--interval", "0.2")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout  # piped: plain text, no screen clearing
    # QUEUE PENDING SCHEDULED RUNNING SUCC/MIN FAIL/MIN DEAD
    assert row(r.stdout, "default") == ["default", "3", "0", "0", "0", "0", "0"]
    assert row(r.stdout, "emails") == ["emails", "2", "1", "0", "0", "0", "0"]
    assert "tasks: 5 pending, 1 scheduled, 0 running" in r.stdout
    assert "(no workers registered)" in r.stdout

    r = nexq("top", "--once", "--json", "--store", resp_url, "--namespace", ns, "--interval", "0.2")
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    queues = {q["name"]: q for q in snap["queues"]}
    assert (queues["emails"]["pending"], queues["emails"]["scheduled"]) == (2, 1)
    assert queues["default"]["succeeded_per_min"] == 0.0 and snap["workers"] == []


@pytest.mark.slow
def test_on_a_terminal_each_frame_clears_the_screen(resp_url: str, prefix: str) -> None:
    ns = prefix.rstrip(":")
    fill(resp_url, ns)
    main, child = pty.openpty()
    proc = subprocess.Popen(nexq_cmd("top", "--once", "--store", resp_url, "--namespace", ns, "--interval", "0.2"),
                            cwd=ROOT, env=clean_env(), stdin=child, stdout=child, stderr=child)
    os.close(child)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(main)
    assert proc.wait(30) == 0
    text = out.decode()
    assert text.startswith(CLEAR) and row(text, "emails")[:3] == ["emails", "2", "1"]


@pytest.mark.slow
def test_live_view_of_a_running_server_refreshes_until_ctrl_c(tmp_path: Path) -> None:
    with nexq_run("--data-dir", str(tmp_path / "d"), log=str(tmp_path / "run.log")) as (_, port):
        url = f"http://127.0.0.1:{port}"
        for _ in range(3):
            assert nexq("enqueue", "noop", "--api", url).returncode == 0
        out = tmp_path / "top.out"
        with out.open("wb") as sink:
            top = subprocess.Popen(nexq_cmd("top", "--api", url, "--interval", "0.3"), cwd=ROOT,
                                   env=clean_env(), stdout=sink, stderr=subprocess.PIPE)
            try:
                wait_for(lambda: out.read_text().count("QUEUE ") >= 3, what="three frames")
            finally:
                code = stop(top, signal.SIGINT)
        text = out.read_text()
        assert code == 0 and top.stderr is not None and top.stderr.read() == b""  # Ctrl-C ends it quietly
        assert f"nexq top - {url}" in text and "WORKERS: 1 live, 0 stale" in text
        assert row(text.split("QUEUE ")[-1], "default")[0] == "default"


def test_a_bad_interval_is_one_line_and_exit_2() -> None:
    line = one_line_error(nexq("top", "--interval", "0", "--store", "memory://"), 2)
    assert "--interval" in line


def sample(succeeded: int, failed: int, at: float, workers: list[dict[str, Any]] | None = None) -> Any:
    stats = {
        "time": 1_800_000_000.0 + at,
        "counts": {"pending": 4, "scheduled": 1, "running": 2, "dead": 1},
        "throughput": [{"minute": 0, "processed": 7, "failed": 1}, {"minute": 60, "processed": 3, "failed": 0}],
        "queues": [{"name": "default", "paused": True, "pending": 4, "scheduled": 1, "running": 2, "dead": 1,
                    "totals": {"succeeded": succeeded, "failed_attempts": failed}}],
    }
    return stats, workers or [], at


def test_rates_are_per_minute_over_the_interval() -> None:
    f = frame(sample(10, 2, 0.0), sample(40, 5, 30.0))
    [q] = f["queues"]
    assert (q["succeeded_per_min"], q["failed_per_min"]) == (60.0, 6.0)
    assert f["this_minute"]["processed"] == 3 and f["last_minute"]["processed"] == 7
    first = frame(None, sample(40, 5, 30.0))  # a first frame has no rate yet
    assert first["queues"][0]["succeeded_per_min"] is None
    text = render(f, "redis://127.0.0.1:6379", 2.0)
    assert row(text, "default") == ["default", "4", "1", "2", "60", "6", "1", "paused"]
    assert "this minute 3 succeeded, 0 failed; last minute 7, 1" in text


def test_a_small_terminal_cuts_the_worker_rows() -> None:
    workers = [{"id": f"w{i}", "host": "h", "pid": i, "queues": ["*"], "concurrency": 4, "running": [],
                "processed": 0, "failed": 0, "stale": False} for i in range(30)]
    text = render(frame(None, sample(0, 0, 0.0, workers)), "x", 2.0, height=15)
    assert len(text.splitlines()) <= 15 and text.splitlines()[-1].startswith("... ")
    assert int(text.splitlines()[-1].split()[1]) + sum(ln.startswith("w") for ln in text.splitlines()) == 30
