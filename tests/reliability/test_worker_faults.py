"""Workers killed, frozen and poisoned: no acknowledged task is lost.

Bounded forms of the soak tests in benchmarks/soak/ (issue: reliability).
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from nexq.app import Nexq
from nexq.task import Status
from tests.runtime.procs import spawn, stop

pytestmark = pytest.mark.slow

APP = "tests.runtime.sample_app:app"
# benchmarks/soak/run.sh sets NEXQ_SOAK=1 for the long forms of these tests.
SOAK = os.environ.get("NEXQ_SOAK") == "1"


def workers_args(url: str, ns: str, *extra: str) -> list[str]:
    return ["worker", "--store", url, "--namespace", ns, "--app", APP, *extra]


async def statuses(app: Nexq, ids: list[str]) -> collections.Counter[str]:
    ins = app._runtime.inspector  # type: ignore[union-attr]
    counts: collections.Counter[str] = collections.Counter()
    for i in range(0, len(ids), 500):
        for t in await ins._load(ids[i : i + 500]):
            counts[t.status.value if t else "missing"] += 1
    return counts


async def let_go(app: Nexq, pid: int, since: float, limit: float = 30) -> dict[str, Any]:
    """The registry record of worker process ``pid`` once it has beaten after
    ``since`` with nothing running (its handler ended); TimeoutError after ``limit`` s."""
    with trio.fail_after(limit):
        while True:
            for w in await app._runtime.registry.list():  # type: ignore[union-attr]
                if w["pid"] == pid and w["last_heartbeat"] > since and not w["running"]:
                    return dict(w)
            await trio.sleep(0.1)


async def test_random_sigkill_every_two_seconds_loses_nothing(resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    record = tmp_path / "runs.txt"
    env = {"NEXQ_TEST_RECORD": str(record)}
    args = workers_args(resp_url, ns, "--lease", "2", "--concurrency", "8")
    procs = [spawn(*args, "--with-scheduler", env=env, log=str(tmp_path / f"w{i}.log")) for i in range(4)]
    kills, rng = 0, random.Random(3)
    app = Nexq(resp_url, namespace=ns)
    try:
        async with app.connect():
            n = 20_000 if SOAK else 3000
            handles = await app.enqueue_many(
                [("record", {"i": i, "seconds": 0.05}) for i in range(n)]
            )
            ids = [h.id for h in handles]
            chaos_end = time.monotonic() + (60 if SOAK else 16)
            while time.monotonic() < chaos_end:
                await trio.sleep(2)  # the chaos itself: a kill every 2 s
                victim = rng.randrange(len(procs))
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait()
                kills += 1
                procs[victim] = spawn(*args, "--with-scheduler", env=env,
                                      log=str(tmp_path / f"w{victim}-{kills}.log"))
            with trio.fail_after(900 if SOAK else 180):
                while (c := await statuses(app, ids))["succeeded"] < n:
                    assert c["dead"] == 0 and c["missing"] == 0, c
                    await trio.sleep(0.5)
    finally:
        for p in procs:
            stop(p)
    runs = collections.Counter(int(x) for x in record.read_text().split())
    assert set(runs) == set(range(n))  # every task ran
    duplicates = sum(c - 1 for c in runs.values())
    assert kills == (30 if SOAK else 8)
    assert duplicates <= kills * 8  # at most what was in flight on the killed workers
    print(f"\nSOAK-RESULT sigkill: tasks={n} kills={kills} duplicates={duplicates} lost=0")


async def test_frozen_worker_loses_its_tasks_and_its_late_ack_is_refused(resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    app = Nexq(resp_url, namespace=ns)
    frozen = spawn(*workers_args(resp_url, ns, "--lease", "1"), log=str(tmp_path / "frozen.log"))
    try:
        async with app.connect():
            h = await app.enqueue("sleep", {"seconds": 2})
            with trio.fail_after(30):
                while (await h.status()) is not Status.RUNNING:
                    await trio.sleep(0.05)
            frozen.send_signal(signal.SIGSTOP)
            other = spawn(*workers_args(resp_url, ns, "--lease", "1", "--with-scheduler"),
                          log=str(tmp_path / "other.log"))
            try:
                result = await h.result(timeout=60)
                assert result["pid"] == other.pid
                frozen.send_signal(signal.SIGCONT)  # wakes up with a stale lease
                record = await let_go(app, frozen.pid, since=time.time())
                assert record["processed"] == 0  # its late ack counted for nothing
                t = await h.info()
                assert [a.outcome.value for a in t.attempts] == ["lost", "succeeded"]
                assert t.result["pid"] == other.pid  # the stale ack was refused
            finally:
                stop(other)
    finally:
        frozen.send_signal(signal.SIGCONT)
        stop(frozen)


async def test_poison_pill_ends_dead_after_max_retries_while_work_continues(resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    args = workers_args(resp_url, ns, "--lease", "1", "--concurrency", "4", "--with-scheduler")
    procs: list[subprocess.Popen[bytes]] = [spawn(*args, log=str(tmp_path / f"w{i}.log")) for i in range(2)]
    restarts = 0
    app = Nexq(resp_url, namespace=ns)
    try:
        async with app.connect():
            pill = await app.enqueue("die", None, max_retries=2)  # 1 try + 2 retries, all lost
            good = await app.enqueue_many([("sleep", {"seconds": 0.01, "i": i}) for i in range(200)])
            with trio.fail_after(120):
                while True:
                    for i, p in enumerate(procs):
                        if p.poll() is not None:  # a supervisor restarts dead workers
                            procs[i] = spawn(*args, log=str(tmp_path / f"w{i}-{restarts}.log"))
                            restarts += 1
                    if (await pill.status()) is Status.DEAD:
                        break
                    await trio.sleep(0.2)
            t = await pill.info()
            assert [a.outcome.value for a in t.attempts] == ["lost", "lost", "lost"]
            assert restarts >= 3
            for h in good:
                assert (await h.result(timeout=60))["pid"] > 0
    finally:
        for p in procs:
            stop(p)
