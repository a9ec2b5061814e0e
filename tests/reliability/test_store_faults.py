"""The store restarting, the embedded store killed, a retry storm."""

from __future__ import annotations

import collections
import os
import signal
import time
from pathlib import Path

import pytest
import trio

from nexq.app import Nexq
from nexq.config import Settings
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.worker import Worker
from nexq.store import Store
from tests.runtime.procs import api, nexq_run, spawn, stop
from tests.servers import redis_server

pytestmark = pytest.mark.slow

APP = "tests.runtime.sample_app:app"


def test_embedded_store_killed_ten_times_loses_no_acknowledged_task(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    args = ("--data-dir", data, "--app", APP, "--concurrency", "4", "--lease", "2")
    acked: list[str] = []
    for round_no in range(10):
        with nexq_run(*args, log=str(tmp_path / f"run{round_no}.log")) as (proc, port):
            for i in range(20):
                t = api(port, "POST", "/api/tasks",
                        json={"type": "sleep", "payload": {"seconds": 0.02 * (i % 5), "i": i}})
                acked.append(t["id"])
            deadline = time.monotonic() + 10  # kill it mid-work: once one of them started
            while all(api(port, "GET", f"/api/tasks/{tid}")["status"] == "pending" for tid in acked[-20:]):
                assert time.monotonic() < deadline, "no task started within 10 s"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    with nexq_run(*args, log=str(tmp_path / "final.log")) as (proc, port):
        deadline = time.monotonic() + 120
        left = set(acked)
        while left and time.monotonic() < deadline:
            for tid in list(left):
                if api(port, "GET", f"/api/tasks/{tid}")["status"] == "succeeded":
                    left.discard(tid)
            time.sleep(0.3)
        assert not left, f"{len(left)} of {len(acked)} acknowledged tasks did not complete"
        stop(proc)


async def test_redis_restart_with_aof_loses_nothing_and_clients_reconnect(tmp_path: Path) -> None:
    with redis_server("--appendonly", "yes", "--appendfsync", "always") as server:
        w = spawn("worker", "--store", server.url, "--app", APP, "--lease", "2", "--with-scheduler",
                  "--store-timeout", "1", log=str(tmp_path / "w.log"))
        app = Nexq(server.url)
        acked = []
        try:
            async with app.connect():
                with trio.fail_after(30):  # the worker is up (a worker starting while
                    while not await app._runtime.registry.list():  # type: ignore[union-attr]
                        await trio.sleep(0.05)  # the store is down exits, by design)
                for i in range(100):
                    acked.append((await app.enqueue("sleep", {"seconds": 0.05, "i": i})).id)
                server.stop(kill=True)  # kill -9 the store mid-run
                await trio.sleep(1)  # the outage itself: the store stays down a second
                server.start()  # same port, replays the append-only file
                with trio.fail_after(10):
                    while True:  # the producer's client reconnects by itself
                        try:
                            await app.broker.store.ping()
                            break
                        except Exception:
                            await trio.sleep(0.2)
                for i in range(100, 150):
                    acked.append((await app.enqueue("sleep", {"seconds": 0.01, "i": i})).id)
                left = set(acked)
                with trio.move_on_after(90):
                    while left:
                        for tid in list(left):
                            if (await app.handle(tid).status()).value == "succeeded":
                                left.discard(tid)
                        await trio.sleep(0.2)
                stuck = [(await app.handle(t).info()).to_json() for t in left]
                assert not stuck, [(t["status"], t["attempt"], t["attempts"]) for t in stuck]
            assert w.poll() is None  # the worker rode out the restart
        finally:
            stop(w)


async def test_retry_storm_is_spread_by_jittered_backoff(store: Store, prefix: str) -> None:
    """2,000 tasks fail for 8 s then succeed: retries spread out (peak ≤ 3x mean).
    The soak form: 10,000 tasks failing for 30 s."""
    count, outage = (10_000, 30) if os.environ.get("NEXQ_SOAK") == "1" else (2000, 8)
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store)
    app = Nexq()
    start = time.monotonic()
    attempts: list[float] = []

    @app.task("storm", max_retries=20, retry=__import__("nexq").RetryPolicy(base=0.5, cap=4.0))
    async def storm(payload: object) -> str:
        attempts.append(time.monotonic() - start)
        if time.monotonic() - start < outage:
            raise RuntimeError("downstream is down")
        return "ok"

    app.bind(rt)
    w = Worker(rt, app, concurrency=200)
    async with trio.open_nursery() as n:
        await n.start(Scheduler(rt.broker).run)
        await n.start(w.run)
        handles = await app.enqueue_many([("storm", i) for i in range(count)])
        with trio.fail_after(600):
            for h in handles:
                assert await h.result() == "ok"
        n.cancel_scope.cancel()
    # Retry rate per second after the first wave (the first attempts all
    # start at once by design): from 1 s until the outage ends.
    retries = collections.Counter(int(t) for t in attempts if 1 <= t < outage)
    rates = [retries.get(s, 0) for s in range(1, outage)]
    mean = sum(rates) / len(rates)
    assert max(rates) <= 3 * mean, rates
    print(f"\nSOAK-RESULT retry-storm: tasks={count} outage={outage}s peak={max(rates)}/s mean={mean:.0f}/s")
