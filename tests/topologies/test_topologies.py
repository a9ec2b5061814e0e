"""One app, one truth: every deployment topology behaves the same.

Real processes on one redis-server (shared by the module; each topology in
its own namespace), the app of ``tests/topologies/app.py`` loaded with
``--app``; every process runs the scheduler agents (the default):

- ``run``: ``nexq run --store redis://...`` alone;
- ``run+workers``: ``nexq run --no-worker`` and two ``nexq worker``;
- ``workers``: two ``nexq worker`` and nothing else.

The three checks of a topology reuse its processes: a delayed task runs no
earlier than asked; a failing task retries, then dies; a cron entry firing
every second is enqueued exactly once per tick, however many schedulers run.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import attrs
import pytest
import trio

from nexq import Nexq, RetryPolicy
from nexq.task import Status
from tests.runtime.procs import spawn, stop, wait_http
from tests.servers import RedisServer, free_port, redis_server

pytestmark = pytest.mark.slow

APP = "tests.topologies.app:app"
TOPOLOGIES = {  # name -> (nexq run arguments or None, number of nexq worker processes)
    "run": ([], 0),
    "run+workers": (["--no-worker"], 2),
    "workers": (None, 2),
}


@attrs.define
class Deployment:
    url: str
    namespace: str
    schedulers: int
    ready_at: float  # unix time once every process serves
    procs: list[subprocess.Popen[bytes]]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as s:
        yield s


@pytest.fixture(scope="module", params=list(TOPOLOGIES))
def deployment(request: pytest.FixtureRequest, server: RedisServer,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    name = request.param
    run_args, n_workers = TOPOLOGIES[name]
    ns = f"topo{name.replace('+', '')}{os.getpid()}"
    logs = tmp_path_factory.mktemp(f"logs-{name.replace('+', '-')}")
    common = ["--store", server.url, "--namespace", ns, "--app", APP]
    env = {"NEXQ_TEST_CRON": "1"}  # the app's cron entry: a fire every second
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if run_args is not None:
            port = free_port()
            procs.append(spawn("run", "--port", str(port), *common, *run_args, env=env,
                               log=str(logs / "run.log")))
        procs += [spawn("worker", *common, env=env, log=str(logs / f"worker{i}.log")) for i in range(n_workers)]
        if run_args is not None:
            wait_http(port)
        serving = n_workers + (1 if run_args == [] else 0)  # nexq run alone runs a worker too
        trio.run(wait_workers, server.url, ns, serving)
        yield Deployment(server.url, ns, len(procs), time.time(), procs)
    finally:
        for p in procs:
            stop(p)


async def wait_workers(url: str, ns: str, n: int) -> None:
    app = Nexq(url, namespace=ns)
    async with app.connect():
        with trio.fail_after(60):
            while len(await app._runtime.registry.list()) < n:  # type: ignore[union-attr]
                await trio.sleep(0.05)


async def test_a_delayed_task_runs_no_earlier_than_asked(deployment: Deployment) -> None:
    app = Nexq(deployment.url, namespace=deployment.namespace)
    async with app.connect():
        handles = [await app.enqueue("stamp", i, delay=0.4 + 0.2 * i) for i in range(5)]
        for h in handles:
            started = await h.result(timeout=30)
            run_at = (await h.info()).spec.run_at
            assert run_at is not None
            # Never early; late by a wheel bucket plus pick-up, not by a poll back-off.
            assert run_at <= started < run_at + 1.0, (started - run_at)


async def test_a_failing_task_retries_then_dies(deployment: Deployment) -> None:
    app = Nexq(deployment.url, namespace=deployment.namespace)
    async with app.connect():
        h = await app.enqueue("boom", max_retries=2, retry=RetryPolicy(base=0.05, cap=0.2))
        with trio.fail_after(30):
            while (t := await h.info()).status is not Status.DEAD:
                await trio.sleep(0.05)
    assert [a.outcome.value for a in t.attempts if a.outcome] == ["failed"] * 3
    assert [a.error_message for a in t.attempts] == ["boom"] * 3
    assert t.attempt == 3  # max_retries + 1


async def test_cron_fires_exactly_once_per_tick(deployment: Deployment) -> None:
    """Every scheduler of the deployment has the entry; each second is enqueued once."""
    app = Nexq(deployment.url, namespace=deployment.namespace)
    first = int(deployment.ready_at) + 1  # the first whole tick with every process up
    async with app.connect():
        inspector = app._runtime.inspector  # type: ignore[union-attr]
        with trio.fail_after(30):
            while time.time() < first + 5:  # at least 4 whole ticks after `first`
                await trio.sleep(0.1)
        last = int(time.time()) - 1  # ticks before this one have fired and been enqueued
        page = await inspector.list(type="tick", limit=1000)
    fired = Counter(int(t.spec.created_at) for t in page.tasks)
    ticks = range(first, last + 1)
    assert len(ticks) >= 4
    assert {t: fired.get(t, 0) for t in ticks} == dict.fromkeys(ticks, 1), deployment.schedulers
