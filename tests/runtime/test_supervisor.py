"""Worker processes under a supervisor: nexq worker --processes N and nexq run
--worker-processes N, with real processes, signals and a real redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from nexq.app import Nexq
from nexq.config import Settings
from nexq.runtime.supervisor import Backoff
from nexq.task import Status
from tests.cli.helpers import clean_env, nexq, one_line_error, wait_for, wait_log
from tests.runtime.procs import api, children_of, nexq_cmd, running, stop, wait_http
from tests.servers import free_port

APP = "tests.runtime.sample_app:app"
slow = pytest.mark.slow


def test_settings_handed_to_a_child_process_read_back_the_same() -> None:
    settings = Settings.load({"store": "redis://:pw@10.0.0.1:6379", "namespace": "ns", "concurrency": "3",
                              "queues": "mail:3,reports", "lease": "2.5", "processes": "4",
                              "store_memory_limit": "2G", "webhook_on_failure": "1"}, env={})
    again = Settings.load(env=settings.environ(processes=1))
    assert again == Settings.load({"store": "redis://:pw@10.0.0.1:6379", "namespace": "ns", "concurrency": "3",
                                   "queues": "mail:3,reports", "lease": "2.5", "processes": "1",
                                   "store_memory_limit": "2G", "webhook_on_failure": "1"}, env={})
    assert again.store_memory_limit == 2 << 30 and again.processes == 1 and again.webhook_on_failure


def test_restart_backoff_doubles_up_to_the_cap_and_starts_over_after_a_long_run() -> None:
    b = Backoff(first=0.5, cap=4.0, reset_after=60.0)
    delays, delay = [], None
    for _ in range(6):
        delay = b.after(delay, ran=1.0)
        delays.append(delay)
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.after(4.0, ran=61.0) == 0.5


# -- real processes --------------------------------------------------------------------


def spawn(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``nexq ARGS`` in the background, without NEXQ_* from outside, logging to ``log``."""
    from tests.runtime.procs import ROOT

    with open(log, "ab") as out:
        return subprocess.Popen(nexq_cmd(*args), cwd=ROOT, env=clean_env(env), stdout=out,
                                stderr=subprocess.STDOUT)


def supervisor(resp_url: str, prefix: str, tmp_path: Path, *args: str,
               env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Nexq]:
    """``nexq worker ARGS`` on this test's namespace (logging to sup.log), and an app on it."""
    ns = prefix.rstrip(":")
    sup = spawn("worker", "--app", APP, "--store", resp_url, "--namespace", ns, *args,
                log=tmp_path / "sup.log", env=env)
    return sup, Nexq(resp_url, namespace=ns)


async def workers(app: Nexq, count: int, limit: float = 60) -> list[dict[str, Any]]:
    """The registry's entries once it lists ``count`` workers."""
    with trio.fail_after(limit):
        while len(listed := await app._runtime.registry.list()) != count:  # type: ignore[union-attr]
            await trio.sleep(0.1)
    return listed


async def run_all(app: Nexq, n: int, seconds: float = 0.01) -> set[int]:
    """Enqueue ``n`` sleep tasks; the pids that ran them once all succeeded."""
    handles = await app.enqueue_many([("sleep", {"seconds": seconds}) for _ in range(n)])
    return {(await h.result(timeout=60))["pid"] for h in handles}


@slow
async def test_two_worker_processes_register_and_both_run_tasks(resp_url: str, prefix: str, tmp_path: Path) -> None:
    sup, app = supervisor(resp_url, prefix, tmp_path, "--processes", "2", "--concurrency", "4")
    try:
        async with app.connect():
            listed = await workers(app, 2)
            pids = {w["pid"] for w in listed}
            assert pids == set(children_of(sup.pid)) and sup.pid not in pids
            with trio.fail_after(60):  # both share the work (each claims what it has slots for)
                while (await run_all(app, 200)) != pids:
                    pass
        text = wait_log(tmp_path / "sup.log", "worker process 2 started")
        assert "concurrency 4 in each of 2 worker processes (from --processes)" in text
    finally:
        assert stop(sup) == 0


@slow
async def test_a_killed_worker_process_is_started_again_and_tasks_keep_completing(
        resp_url: str, prefix: str, tmp_path: Path) -> None:
    sup, app = supervisor(resp_url, prefix, tmp_path, "--processes", "2")
    try:
        async with app.connect():
            first = {w["pid"] for w in await workers(app, 2)}
            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            # its registry entry lives on until its TTL: a third entry, a new child
            listed = await workers(app, 3)
            new = {w["pid"] for w in listed} - first
            assert len(new) == 1 and set(children_of(sup.pid)) == (first - {victim}) | new
            assert await run_all(app, 100)  # every task completes
        assert "worker process" in wait_log(tmp_path / "sup.log", "exited with signal SIGKILL")
    finally:
        assert stop(sup) == 0


@slow
async def test_sigterm_drains_the_running_task_and_everything_exits_0(
        resp_url: str, prefix: str, tmp_path: Path) -> None:
    sup, app = supervisor(resp_url, prefix, tmp_path, "--processes", "2", "--shutdown-grace", "10")
    async with app.connect():
        children = {w["pid"] for w in await workers(app, 2)}
        h = await app.enqueue("sleep", {"seconds": 1.5})
        with trio.fail_after(30):
            while (await h.status()) is not Status.RUNNING:
                await trio.sleep(0.05)
        started = time.monotonic()
        assert await trio.to_thread.run_sync(stop, sup, signal.SIGTERM) == 0
        assert time.monotonic() - started < 10  # within the grace
        t = await h.info()
        assert t.status is Status.SUCCEEDED and len(t.attempts) == 1  # finished, not handed back
        assert not any(running(p) for p in children)
    assert "SIGTERM: draining 2 worker processes" in (tmp_path / "sup.log").read_text()


@slow
async def test_a_second_signal_stops_at_once_and_hands_the_running_task_back(
        resp_url: str, prefix: str, tmp_path: Path) -> None:
    sup, app = supervisor(resp_url, prefix, tmp_path, "--processes", "2", "--lease", "60")
    async with app.connect():
        await workers(app, 2)
        h = await app.enqueue("sleep", {"seconds": 60})
        with trio.fail_after(30):
            while (await h.status()) is not Status.RUNNING:
                await trio.sleep(0.05)
        sup.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(wait_log, tmp_path / "sup.log", "SIGTERM: draining")
        started = time.monotonic()
        assert await trio.to_thread.run_sync(stop, sup, signal.SIGINT) == 0
        assert time.monotonic() - started < 15  # not the 30 s grace, nor the 60 s task
        t = await h.info()
        # handed back at once (the lease was 60 s), not counted as a retry
        assert t.status is Status.PENDING and t.attempts[0].error_type == "Interrupted"


@slow
async def test_a_killed_supervisor_takes_its_worker_processes_with_it(
        resp_url: str, prefix: str, tmp_path: Path) -> None:
    sup, app = supervisor(resp_url, prefix, tmp_path, "--processes", "2")
    async with app.connect():
        children = {w["pid"] for w in await workers(app, 2)}
    sup.kill()
    sup.wait()
    # their stdin pipe closed: they drain and exit on their own
    await trio.to_thread.run_sync(lambda: wait_for(lambda: not any(running(p) for p in children), 30))
    assert (tmp_path / "sup.log").read_text().count("the supervisor is gone") == 2


@slow
async def test_processes_auto_starts_one_worker_process_per_core(resp_url: str, prefix: str, tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    sup, app = supervisor(resp_url, prefix, tmp_path, env={"NEXQ_PROCESSES": "auto"})
    try:
        async with app.connect():
            assert len(await workers(app, cores)) == cores
        if cores > 1:
            assert f"in each of {cores} worker processes (from NEXQ_PROCESSES)" in (tmp_path / "sup.log").read_text()
    finally:
        assert stop(sup) == 0


@slow
async def test_run_with_worker_processes_keeps_the_api_and_the_children_do_the_work(
        resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns, port = prefix.rstrip(":"), free_port()
    run = spawn("run", "--worker-processes", "2", "--app", APP, "--store", resp_url, "--namespace", ns,
                "--port", str(port), log=tmp_path / "run.log")
    try:
        await trio.to_thread.run_sync(wait_http, port)
        app = Nexq(resp_url, namespace=ns)
        async with app.connect():
            pids = {w["pid"] for w in await workers(app, 2)}
            assert pids == set(children_of(run.pid))  # the API process runs no worker of its own
            listed = await trio.to_thread.run_sync(api, port, "GET", "/api/workers")
            assert {w["pid"] for w in (listed["workers"] if isinstance(listed, dict) else listed)} == pids
            task = await trio.to_thread.run_sync(
                lambda: api(port, "POST", "/api/tasks", json={"type": "sleep", "payload": {"seconds": 0}}))
            assert (await app.handle(task["id"]).result(timeout=30))["pid"] in pids
    finally:
        assert stop(run) == 0
    assert "in each of 2 worker processes (from --worker-processes)" in (tmp_path / "run.log").read_text()


@slow
def test_worker_processes_on_the_embedded_store_are_refused_in_one_line(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    line = one_line_error(nexq("run", "--data-dir", data, "--app", APP, "--worker-processes", "2"), 2)
    assert "--worker-processes 2: the embedded store" in line and "pass --store" in line
    line = one_line_error(nexq("run", "--data-dir", data, "--app", APP, env={"NEXQ_WORKER_PROCESSES": "3"}), 2)
    assert line.startswith("nexq: NEXQ_WORKER_PROCESSES 3: the embedded store")
    assert not os.path.exists(data)  # refused before anything started
    line = one_line_error(nexq("worker", "--app", APP, "--store", "redis://127.0.0.1:1", "--processes", "x"), 2)
    assert "--processes='x': must be a number of processes (1-1024) or auto" in line
