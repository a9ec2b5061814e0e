"""Real processes and signals: nexq run, nexq worker, SIGTERM, SIGKILL."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import trio

from nexq.app import Nexq
from nexq.task import Status
from tests.runtime.procs import api, nexq_run, spawn, stop

pytestmark = pytest.mark.slow

APP = "tests.runtime.sample_app:app"


async def wait_statuses(app: Nexq, ids: list[str], want: set[Status], limit: float) -> dict[str, object]:
    infos: dict[str, object] = {}
    with trio.fail_after(limit):
        while True:
            infos = {i: await app.handle(i).info() for i in ids}
            if all(t.status in want for t in infos.values()):  # type: ignore[attr-defined]
                return infos
            await trio.sleep(0.2)


async def test_run_and_two_workers_process_mixed_priorities(resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    common = ["--store", resp_url, "--namespace", ns, "--app", APP, "--concurrency", "8"]
    workers = [spawn("worker", *common, log=str(tmp_path / f"w{i}.log")) for i in range(2)]
    try:
        with nexq_run(*common, log=str(tmp_path / "run.log")) as (_, port):
            app = Nexq(resp_url, namespace=ns)
            async with app.connect():
                with trio.fail_after(60):  # all three workers are up
                    while len(await app._runtime.registry.list()) < 3:  # type: ignore[union-attr]
                        await trio.sleep(0.1)
                handles = await app.enqueue_many(
                    [("sleep", {"seconds": 0.01, "i": i}, {"priority": i % 10}) for i in range(1000)]
                )
                infos = await wait_statuses(app, [h.id for h in handles], {Status.SUCCEEDED}, 120)
            pids = {t.result["pid"] for t in infos.values()}  # type: ignore[attr-defined]
            assert len(pids) >= 2  # the work was shared between processes
            listed = await trio.to_thread.run_sync(api, port, "GET", "/api/workers")
            items = listed["workers"] if isinstance(listed, dict) else listed
            assert len(items) == 3  # nexq run's own worker and the two nexq worker processes
    finally:
        for w in workers:
            stop(w)


async def test_sigterm_drains_and_hands_back_unfinished_tasks(resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    w = spawn("worker", "--store", resp_url, "--namespace", ns, "--app", APP,
              "--shutdown-grace", "0.5", "--lease", "60", log=str(tmp_path / "w.log"))
    app = Nexq(resp_url, namespace=ns)
    async with app.connect():
        quick = await app.enqueue("sleep", {"seconds": 0.2})
        slow = await app.enqueue("sleep", {"seconds": 60})
        await wait_statuses(app, [slow.id], {Status.RUNNING}, 30)
        started = time.monotonic()
        assert await trio.to_thread.run_sync(stop, w, signal.SIGTERM) == 0
        assert time.monotonic() - started < 15
        assert (await quick.info()).status is Status.SUCCEEDED
        t = await slow.info()
        # handed back at once (the lease was 60 s), not counted as a retry
        assert t.status is Status.PENDING and t.attempt == 1  # the hand-back is not counted
        assert t.attempts[0].error_type == "Interrupted"


async def test_sigkill_mid_task_completes_on_another_worker(resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    common = ["--store", resp_url, "--namespace", ns, "--app", APP, "--lease", "2", "--with-scheduler"]
    doomed = spawn("worker", *common, log=str(tmp_path / "doomed.log"))
    app = Nexq(resp_url, namespace=ns)
    async with app.connect():
        h = await app.enqueue("sleep", {"seconds": 3})
        info = await wait_statuses(app, [h.id], {Status.RUNNING}, 30)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        survivor = spawn("worker", *common, log=str(tmp_path / "survivor.log"))
        try:
            result = await h.result(timeout=60)
            assert result["pid"] == survivor.pid
            t = await h.info()
            assert [a.outcome.value for a in t.attempts] == ["lost", "succeeded"]
        finally:
            stop(survivor)
        assert info


def test_embedded_store_survives_sigkill_of_nexq_run(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    args = ("--data-dir", data, "--app", APP, "--concurrency", "1", "--lease", "3")
    ids = []
    with nexq_run(*args, log=str(tmp_path / "run1.log")) as (proc, port):
        for i in range(30):
            t = api(port, "POST", "/api/tasks", json={"type": "sleep", "payload": {"seconds": 0.05, "i": i}})
            ids.append(t["id"])  # acknowledged
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with nexq_run(*args, log=str(tmp_path / "run2.log")) as (proc, port):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            statuses = [api(port, "GET", f"/api/tasks/{i}")["status"] for i in ids]
            if all(s == "succeeded" for s in statuses):
                break
            time.sleep(0.5)
        assert statuses == ["succeeded"] * 30
        stop(proc)


def test_tasks_made_over_http_get_their_handlers_defaults(tmp_path: Path) -> None:
    with nexq_run("--data-dir", str(tmp_path / "d"), "--app", APP, log=str(tmp_path / "run.log")) as (proc, port):
        t = api(port, "POST", "/api/tasks", json={"type": "noop"})  # @app.task("noop", max_retries=0)
        assert t["max_retries"] == 0
        t = api(port, "POST", "/api/tasks", json={"type": "noop", "max_retries": 2})
        assert t["max_retries"] == 2
        stop(proc)
