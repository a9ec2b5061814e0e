"""Real processes on three redis-servers: `nexq run` and `nexq worker` with
a node list, `nexq cluster plan` / `status`, and adding a node by the
procedure in docs/scaling.md."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
import trio

from nexq.app import Nexq
from nexq.queue.ring import Ring
from nexq.task import Status
from tests.runtime.procs import ROOT, api, nexq_cmd, nexq_run, spawn, stop
from tests.servers import RedisServer, redis_server

pytestmark = pytest.mark.slow

APP = "tests.runtime.sample_app:app"
QUEUES = [f"mail{i}" for i in range(10)]


@pytest.fixture
def servers() -> Iterator[list[RedisServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(redis_server()) for _ in range(3)]


def name(s: RedisServer) -> str:
    return f"127.0.0.1:{s.port}"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nexq_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": ROOT, "PATH": "/usr/bin:/bin"})


async def wait_done(app: Nexq, ids: list[str], limit: float = 60) -> None:
    with trio.fail_after(limit):
        while True:
            infos = await app._runtime.inspector.get_many(ids)  # type: ignore[union-attr]
            if all(t is not None and t.status is Status.SUCCEEDED for t in infos):
                return
            await trio.sleep(0.2)


async def test_processes_share_two_nodes_then_a_third_is_added(servers: list[RedisServer], prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    two = ",".join(s.url for s in servers[:2])
    three = ",".join(s.url for s in servers)
    checkers = [redis.Redis.from_url(s.url, protocol=2) for s in servers]
    ring2 = Ring([name(s) for s in servers[:2]])

    # 1. Two nodes: nexq run + a worker process; tasks land on their queue's node.
    common = ["--namespace", ns, "--app", APP, "--concurrency", "8"]
    worker = spawn("worker", "--store", two, *common, log=str(tmp_path / "w2.log"))
    try:
        with nexq_run("--store", two, *common, log=str(tmp_path / "run2.log")) as (_, port):
            made = api(port, "POST", "/api/tasks/batch", json={"tasks": [
                {"type": "noop", "payload": i, "queue": QUEUES[i % 10]} for i in range(100)]})
            app = Nexq(two, namespace=ns)
            async with app.connect():
                await wait_done(app, [t["id"] for t in made])
            for t in made:
                home = [name(s) for s in servers[:2]].index(ring2.node_for(t["queue"]))
                assert [bool(c.exists(f"{ns}:spec:{t['id']}")) for c in checkers] == [
                    i == home for i in range(3)]
            nodes = api(port, "GET", "/api/nodes")["nodes"]
            assert [n["name"] for n in nodes] == [name(s) for s in servers[:2]]
            assert sorted(q for n in nodes for q in n["queues"]) == sorted(QUEUES)
            assert len(api(port, "GET", "/api/workers")["workers"]) == 2
    finally:
        stop(worker)

    # 2. Plan the third node: only queues that hash to it move.
    plan = cli("cluster", "plan", "--store", two, "--namespace", ns, "--add", servers[2].url, "--json")
    assert plan.returncode == 0, plan.stderr
    moves = {m["queue"]: (m["from"], m["to"]) for m in json.loads(plan.stdout)["moves"]}
    ring3 = Ring([name(s) for s in servers])
    assert moves == {q: (ring2.node_for(q), name(servers[2])) for q in QUEUES
                     if ring3.node_for(q) != ring2.node_for(q)}
    assert moves, "with 10 queues some should hash to the new node"
    moved = sorted(moves)

    # 3. Work is left on the old nodes (nothing runs), then every process
    #    restarts with the new list: old tasks drain where they are, new
    #    ones go to the new node.
    app = Nexq(two, namespace=ns)
    async with app.connect():
        old = await app.enqueue_many([("noop", i, {"queue": q}) for i, q in enumerate(moved * 5)])
    status = cli("cluster", "status", "--store", three, "--namespace", ns, "--json")
    assert status.returncode == 0, status.stderr
    draining = {q for n in json.loads(status.stdout) for q in n["draining"]}
    assert draining == set(moved)
    worker = spawn("worker", "--store", three, *common, log=str(tmp_path / "w3.log"))
    try:
        app = Nexq(three, namespace=ns)
        async with app.connect():
            new = await app.enqueue_many([("noop", i, {"queue": q}) for i, q in enumerate(moved * 5)])
            await wait_done(app, [h.id for h in old + new])
        for h in new:
            assert checkers[2].exists(f"{ns}:spec:{h.id}")
        for h in old:
            assert not checkers[2].exists(f"{ns}:spec:{h.id}")
        status = cli("cluster", "status", "--store", three, "--namespace", ns, "--json")
        assert status.returncode == 0, status.stderr
        assert all(not n["draining"] for n in json.loads(status.stdout))
    finally:
        stop(worker)
        for c in checkers:
            c.close()


def test_bad_node_lists_are_one_line_errors() -> None:
    for store, words in [("redis://a:1,,redis://b:1", "empty entry"),
                         ("redis://a:1,redis://a:1", "more than once"),
                         ("redis://a:1,memory://", "memory://")]:
        out = cli("worker", "--store", store)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr
        assert out.stderr.startswith("nexq: --store:")
    out = cli("cluster", "plan", "--store", "redis://127.0.0.1:1")
    assert out.returncode == 2 and "needs --add" in out.stderr
    out = cli("cluster", "plan", "--store", "redis://127.0.0.1:1", "--add", "redis://127.0.0.1:2")
    assert out.returncode == 3 and "127.0.0.1:1 does not answer" in out.stderr
    out = cli("cluster", "status", "--store", "redis://127.0.0.1:1")
    assert out.returncode == 1 and "UNREACHABLE" in out.stdout and "Traceback" not in out.stderr
