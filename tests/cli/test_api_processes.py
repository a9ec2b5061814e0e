"""nexq run --api-processes N: one port served by N processes (SO_REUSEPORT),
with real processes, signals and a real redis-server."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from nexq.cli.serve import GC_THRESHOLD, settle_heap
from nexq.config import Settings
from tests.cli.helpers import clean_env, nexq, one_line_error, wait_for
from tests.runtime.procs import ROOT, children_of, nexq_cmd, running, stop, wait_http
from tests.servers import free_port

slow = pytest.mark.slow


def spawn(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(nexq_cmd(*args), cwd=ROOT, env=clean_env(), stdout=out, stderr=subprocess.STDOUT)


def answering_pids(port: int, want: int, limit: float = 30) -> set[int]:
    """The pids behind /healthz once ``want`` different ones answered; each
    request opens a connection of its own (the kernel picks its process)."""
    seen: set[int] = set()

    def enough() -> bool:
        body = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
        seen.add(body["pid"])
        return len(seen) >= want

    wait_for(enough, limit, f"{want} answering processes")
    return seen


def test_the_setting_reads_like_the_other_process_counts() -> None:
    assert Settings.load({"api_processes": "3"}, env={}).api_processes == 3
    assert Settings.load(env={"NEXQ_API_PROCESSES": "auto"}).api_processes == len(os.sched_getaffinity(0))
    again = Settings.load(env=Settings.load({"api_processes": "2"}, env={}).environ())
    assert again.api_processes == 2  # what API children are handed: they bind with SO_REUSEPORT too


def test_serving_processes_settle_their_heap() -> None:
    threshold = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 1000 and gc.get_threshold() == (GC_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@contextmanager
def two_api_processes(resp_url: str, prefix: str, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """``nexq run --no-worker --api-processes 2`` on this test's namespace
    once both processes run: (the process, its port, the child's pid);
    stopped with SIGTERM at the end."""
    port = free_port()
    run = spawn("run", "--no-worker", "--api-processes", "2", "--store", resp_url,
                "--namespace", prefix.rstrip(":"), "--port", str(port), log=log)
    try:
        wait_http(port)
        wait_for(lambda: len(children_of(run.pid)) == 1, what="the API child")
        [child] = children_of(run.pid)
        yield run, port, child
    finally:
        stop(run)


@slow
def test_two_api_processes_both_answer_and_sigterm_stops_all(resp_url: str, prefix: str, tmp_path: Path) -> None:
    with two_api_processes(resp_url, prefix, tmp_path / "run.log") as (run, port, child):
        assert answering_pids(port, 2) == {run.pid, child}
        # Either process enqueues into the shared store; every task is seen by both.
        ids = {httpx.post(f"http://127.0.0.1:{port}/api/tasks", json={"type": "t", "payload": i}).json()["id"]
               for i in range(20)}
        for _ in range(10):
            listed = httpx.get(f"http://127.0.0.1:{port}/api/tasks?limit=100").json()["tasks"]
            assert {t["id"] for t in listed} == ids
    assert run.returncode == 0
    wait_for(lambda: not running(child), 10, "the API child to exit")
    log = (tmp_path / "run.log").read_text()
    assert "API process 2 started" in log and "(in 2 processes, from --api-processes)" in log


@slow
def test_a_killed_api_process_is_started_again(resp_url: str, prefix: str, tmp_path: Path) -> None:
    with two_api_processes(resp_url, prefix, tmp_path / "run.log") as (run, port, first):
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: children_of(run.pid) not in ([], [first]), what="a new API child")
        [second] = children_of(run.pid)
        assert answering_pids(port, 2) == {run.pid, second}
    assert run.returncode == 0
    assert "API process 2 exited with signal SIGKILL" in (tmp_path / "run.log").read_text()


@slow
def test_api_processes_on_the_embedded_store_are_refused_in_one_line(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    line = one_line_error(nexq("run", "--data-dir", data, "--api-processes", "2"), 2)
    assert "--api-processes 2: the embedded store" in line and "pass --store" in line
    line = one_line_error(nexq("run", "--data-dir", data, env={"NEXQ_API_PROCESSES": "2"}), 2)
    assert line.startswith("nexq: NEXQ_API_PROCESSES 2: the embedded store")
    assert not os.path.exists(data)  # refused before anything started


@slow
def test_a_port_held_by_another_program_is_one_line(resp_url: str, prefix: str) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        line = one_line_error(nexq("run", "--no-worker", "--api-processes", "2", "--store", resp_url,
                                   "--namespace", prefix.rstrip(":"), "--port", str(port),
                                   "--log-level", "error"), 1)  # (redis-server's eviction warning)
    assert f"--port {port}: cannot listen" in line
