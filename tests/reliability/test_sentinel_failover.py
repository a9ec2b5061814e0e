"""A Sentinel failover under load, with real processes.

Two ``nexq worker`` processes and an API process (``nexq run --no-worker``)
on ``redis+sentinel://``, a producer (``nexq.Client``) enqueueing a few
thousand tasks one by one. Mid-run the replica falls behind (its link to
the primary cut), then the primary is SIGKILLed, Sentinel promotes the
replica, and the dead node comes back as a replica. With
``--store-replicas 1`` nothing is acknowledged while the replica is behind
and every acknowledged task reaches a terminal state; without it, the
tasks acknowledged meanwhile are lost: counted and reported. Workers and
API follow the new primary without a restart; ``/healthz`` answers 503
during the outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import nexq
from nexq.errors import StoreUnavailable
from tests.cli.helpers import APP
from tests.polling import poll
from tests.runtime.procs import spawn, stop, wait_http
from tests.sentinel_bed import SentinelBed, sentinel_bed
from tests.servers import free_port

pytestmark = pytest.mark.slow

TASKS = 2000
KILL_AT = TASKS // 3  # acknowledged enqueues before the replica falls behind
CUT_TASKS = 100  # acknowledged enqueues the replica misses before the primary dies (at most 1.5 s)


@pytest.fixture
def bed() -> Iterator[SentinelBed]:
    # A bed per test, so each starts from one failover's history (a fresh
    # bed costs a few seconds).
    with sentinel_bed() as b:
        yield b


class Producer(threading.Thread):
    """Enqueues TASKS tasks one by one, retrying through the outage; keeps
    the ids of the calls that returned (acknowledged)."""

    def __init__(self, url: str, namespace: str, replicas: int) -> None:
        super().__init__(daemon=True)
        self.client = nexq.Client(url, namespace=namespace, replicas=replicas)
        self.acked: list[str] = []
        self.refused = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 60
            while len(self.acked) < TASKS and time.monotonic() < deadline:
                try:
                    self.acked.append(self.client.enqueue("tick", len(self.acked)).id)
                except StoreUnavailable:
                    self.refused += 1  # not acknowledged: the producer may not count on it
                    time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


class Health(threading.Thread):
    """Samples GET /healthz every 50 ms: (time, status code)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.samples, self.done = port, list[tuple[float, int]](), threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=2) as http:
            while not self.done.is_set():
                try:
                    code = http.get(f"http://127.0.0.1:{self.port}/healthz").status_code
                except httpx.HTTPError:
                    code = 0
                self.samples.append((time.monotonic(), code))
                time.sleep(0.05)

    def degraded(self) -> float:
        """Seconds from the first non-200 answer to the next 200 after it."""
        bad = [t for t, c in self.samples if c != 200]
        good_after = [t for t, c in self.samples if c == 200 and bad and t > bad[0]]
        return (good_after[0] - bad[0]) if bad and good_after else 0.0


def terminal_or_missing(client: nexq.Client, ids: list[str]) -> tuple[list[str], list[str], int]:
    """(ids not yet terminal, ids whose task is gone, how many succeeded)."""
    waiting, missing, succeeded = [], [], 0
    for tid in ids:
        task = client.get(tid)
        if task is None:
            missing.append(tid)
        elif not task.status.terminal:
            waiting.append(tid)
        else:
            succeeded += task.status.value == "succeeded"
    return waiting, missing, succeeded


def run_failover(bed: SentinelBed, tmp: Path, replicas: int) -> dict[str, float]:
    """One run (see module doc); returns what it measured."""
    ns = f"fo{replicas}"
    bed.wait_ready()
    env = {"NEXQ_STORE": bed.url, "NEXQ_NAMESPACE": ns, "NEXQ_STORE_REPLICAS": str(replicas),
           "NEXQ_LEASE": "3", "NEXQ_RECONCILE_INTERVAL": "1", "NEXQ_RECONCILE_GRACE": "2",
           "NEXQ_STORE_TIMEOUT": "2", "NEXQ_LOG_LEVEL": "warning"}
    port = free_port()
    procs = [spawn("worker", "--app", APP, env=env, log=str(tmp / f"worker{i}.log")) for i in range(2)]
    procs.append(spawn("run", "--app", APP, "--no-worker", "--no-scheduler", "--port", str(port),
                       env=env, log=str(tmp / "api.log")))
    try:
        wait_http(port)
        health = Health(port)
        health.start()
        producer = Producer(bed.url, ns, replicas)
        producer.start()
        poll(lambda: len(producer.acked) >= KILL_AT or not producer.is_alive(), limit=30)
        # The replica falls behind (its link cut), then the primary dies:
        # what it acknowledged meanwhile exists nowhere else.
        replica = bed.cut_replication()
        cut_at = len(producer.acked)
        deadline = time.monotonic() + 1.5
        poll(lambda: len(producer.acked) >= cut_at + CUT_TASKS or time.monotonic() > deadline, limit=10)
        dead = bed.kill_primary()
        killed_at = len(producer.acked)
        bed.mend(replica)
        bed.wait_failover(dead)
        if replicas:
            bed.restore(dead)  # back as a replica: WAIT 1 can succeed again
        producer.join(60)
        assert producer.error is None, producer.error
        assert len(producer.acked) == TASKS
        checker = nexq.Client(bed.url, namespace=ns)
        # Done when every acknowledged task still there is terminal.
        def settled() -> tuple[list[str], int] | None:
            waiting, missing, succeeded = terminal_or_missing(checker, producer.acked)
            return None if waiting else (missing, succeeded)
        missing, succeeded = poll(settled, limit=40, every=0.5)
        health.done.set()
        health.join(5)
        # The workers and the API that saw the outage are the ones that finished the run.
        assert all(p.poll() is None for p in procs), "a nexq process exited"
        return {"acknowledged": len(producer.acked), "cut_after": cut_at, "killed_after": killed_at, "refused": producer.refused,
                "lost": len(missing), "succeeded": succeeded, "healthz_degraded_s": round(health.degraded(), 2)}
    except BaseException:
        for log in sorted(tmp.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    finally:
        for p in procs:
            stop(p, limit=15)


def test_with_store_replicas_no_acknowledged_task_is_lost(bed: SentinelBed, tmp_path: Path) -> None:
    got = run_failover(bed, tmp_path, replicas=1)
    print(f"\nSentinel failover, --store-replicas 1: {got}")
    assert got["lost"] == 0
    assert got["refused"] > 0  # the producer did see the outage
    assert got["healthz_degraded_s"] > 0  # /healthz showed it


def test_without_store_replicas_the_loss_is_measured(bed: SentinelBed, tmp_path: Path) -> None:
    got = run_failover(bed, tmp_path, replicas=0)
    print(f"\nSentinel failover, no --store-replicas: {got}")
    # Measured: what was acknowledged while the replica was behind is gone
    # (and perhaps a write still in flight when its link was cut).
    assert 0 <= got["lost"] <= got["killed_after"] - got["cut_after"] + 3
    assert got["healthz_degraded_s"] > 0
