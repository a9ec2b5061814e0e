"""A primary of a Redis Cluster dies mid-run: real processes, real failover.

A 3-primary, 3-replica redis-server cluster (cluster-node-timeout 1000 ms,
so the replica promotes itself about a second after the kill); ``nexq run
--no-worker`` (the REST API and the scheduler) and two ``nexq worker``
processes on the cluster URL; the test produces 5,000 tasks through the API
over 12 queues and SIGKILLs a primary (not the home partition's) when
about 40% are acknowledged. Then:

* ``/healthz`` says ``degraded`` (the dead primary's partitions down) while
  the API keeps working, and ``ok`` again after the promotion;
* the workers recover without a restart: every acknowledged task that the
  cluster still has reaches a terminal state;
* acknowledged tasks the cluster lost (written to the primary, not yet
  replicated when it died) are counted and reported; with
  ``--store-replicas 1`` (WAIT 1 after every enqueue and outcome) none is lost.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from nexq import Nexq
from nexq.store.cluster_partition import partition_tags
from nexq.store.cluster_slots import key_slot
from tests.cluster_servers import RedisCluster, redis_cli, redis_cluster
from tests.runtime.procs import nexq_run, spawn, stop

pytestmark = pytest.mark.slow

APP = "tests.runtime.sample_app:app"
TASKS, CHUNK, QUEUES = 5000, 250, 12


def post_chunk(port: int, start: int) -> list[str] | None:
    """POST one chunk; its ids if acknowledged, None if refused or failed."""
    body = {"tasks": [{"type": "noop", "payload": i, "queue": f"q{i % QUEUES}"}
                      for i in range(start, start + CHUNK)]}
    try:
        r = httpx.post(f"http://127.0.0.1:{port}/api/tasks/batch", json=body, timeout=15)
    except httpx.HTTPError:
        return None
    if r.status_code in (200, 201):
        return [t["id"] for t in r.json()]
    LAST_REFUSAL[:] = [r.text]
    return None


LAST_REFUSAL: list[str] = []


def health(port: int) -> str:
    try:
        return str(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["status"])
    except (httpx.HTTPError, ValueError, KeyError):
        return "no answer"


async def settle(url: str, ns: str, ids: list[str], limit: float) -> tuple[list[str], list[str]]:
    """Wait until every acknowledged task the cluster still has is terminal;
    returns (lost ids, ids still not terminal at ``limit``)."""
    app = Nexq(url, namespace=ns)
    async with app.connect():
        ins = app._runtime.inspector  # type: ignore[union-attr]
        deadline = trio.current_time() + limit
        while True:
            tasks: list[Any] = []
            for i in range(0, len(ids), 1000):
                tasks += await ins.get_many(ids[i : i + 1000])
            lost = [tid for tid, t in zip(ids, tasks, strict=True) if t is None]
            open_ = [tid for tid, t in zip(ids, tasks, strict=True) if t is not None and not t.status.terminal]
            if not open_ or trio.current_time() > deadline:
                return lost, open_
            await trio.sleep(0.25)


@pytest.mark.parametrize("replicas", [0, 1])
async def test_a_primary_dies_mid_run(replicas: int, prefix: str, tmp_path: Path,
                                      record_property: Any) -> None:
    ns = prefix.rstrip(":")
    with redis_cluster(3, 1) as cluster:
        # The victim serves partitions, not the home one (whose loss makes the API unavailable).
        home = cluster.owner(key_slot(partition_tags(12)[0]))
        victim = next(p for p in cluster.ports[: cluster.primaries] if p != home)
        replica = cluster.replica_of(victim)
        common = ["--store", cluster.url, "--namespace", ns, "--app", APP, "--lease", "5",
                  "--store-replicas", str(replicas)]
        workers = [spawn("worker", *common, "--concurrency", "50", log=str(tmp_path / f"w{i}.log"))
                   for i in range(2)]
        try:
            with nexq_run(*common, "--no-worker", log=str(tmp_path / "api.log")) as (_, port):
                acked, refused, seen = await trio.to_thread.run_sync(
                    produce, cluster, port, victim, replica)
                assert "degraded" in seen, seen  # the outage was visible on /healthz
                deadline = time.monotonic() + 20
                while not (cluster.state_ok(replica) and health(port) == "ok"):
                    assert time.monotonic() < deadline, "the replica was not promoted / the API not healthy"
                    await trio.sleep(0.1)
                lost, open_ = await settle(cluster.url, ns, acked, limit=25)
            assert all(w.poll() is None for w in workers)  # no restart needed
        finally:
            for w in workers:
                stop(w)
    record_property("acknowledged", len(acked))
    record_property("lost", len(lost))
    print(f"\nfailover, --store-replicas {replicas}: {len(acked)} tasks acknowledged, {refused} refused "
          f"during the outage, {len(lost)} acknowledged tasks lost, /healthz: {' -> '.join(seen)}")
    assert len(acked) >= TASKS - refused
    assert not open_, f"{len(open_)} acknowledged tasks never finished"
    if replicas:
        assert not lost, f"{len(lost)} tasks lost although a replica acknowledged them"
    else:
        assert len(lost) < len(acked) // 10  # reported above; a few at most, not a wipe-out


def promoted(port: int) -> bool:
    try:
        return redis_cli(port, "role", timeout=2).startswith("master")
    except (subprocess.SubprocessError, OSError):
        return False


def produce(cluster: RedisCluster, port: int, victim: int, replica: int) -> tuple[list[str], int, list[str]]:
    """POST the tasks, killing ``victim`` at 40%; chunks refused during the
    outage are sent again. Once ``replica`` is promoted the victim is started
    again (empty: it rejoins as the new primary's replica, so WAIT 1 can be
    met again). Returns (acknowledged ids, chunks refused, /healthz
    statuses in the order seen)."""
    acked: list[str] = []
    refused = 0
    seen = [health(port)]
    start, killed = 0, False
    deadline = time.monotonic() + 60
    while start < TASKS:
        assert time.monotonic() < deadline, f"the API kept refusing after {refused} tries, health {seen}: {LAST_REFUSAL}"
        if start == TASKS * 2 // 5 and not killed:
            cluster.server(victim).stop(kill=True)
            killed = True
            status = health(port)
            if status != seen[-1]:
                seen.append(status)
        victim_server = cluster.server(victim)
        if start > TASKS * 2 // 5 - CHUNK and victim_server.proc is None and promoted(replica):
            victim_server.start()
        ids = post_chunk(port, start)
        if ids is None:
            refused += 1
            status = health(port)
            if status != seen[-1]:
                seen.append(status)
            time.sleep(0.2)  # the outage lasts about a second: send the chunk again
            continue
        acked += ids
        start += CHUNK
    if cluster.server(victim).proc is None:
        while not promoted(replica):
            assert time.monotonic() < deadline, "the replica was not promoted"
            time.sleep(0.05)
        cluster.server(victim).start()
    return acked, refused, seen
