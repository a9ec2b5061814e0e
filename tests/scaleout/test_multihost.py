"""Nexq across five hosts of a network-namespace test bed (issue #10, part 1).

Host a runs the store (redis-server), host b ``nexq run --no-worker`` (API
and scheduler, so every task runs on a worker host), hosts c and d one
``nexq worker`` each, and host t only the forwarders through which this
test, in the root namespace, reaches b's API and a's store (``Driver``).
Real processes, real links: host d's link is cut with ``ip link set eth0
down`` while it runs tasks.

The three tests share one bed (module fixture) and do not depend on each
other's order: each checks the tasks it enqueued.
"""

from __future__ import annotations

import collections
import errno
import ipaddress
import os
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from tests.scaleout.cluster import (
    ROOT,
    Driver,
    nexq_argv,
    nexq_env,
    redis_argv,
    wait_for,
)
from tests.scaleout.netbed import NetBed, ip, unreachable_from
from tests.servers import find_redis_server

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the test bed creates network namespaces"),
    pytest.mark.slow,
]

APP = "tests.runtime.sample_app:app"
STORE_PORT = 6379  # each namespace has its own ports: fixed numbers cannot clash
API_PORT = 8080
LEASE = 3  # seconds: a cut-off worker's attempts come back this soon
CONCURRENCY = 4  # per worker host


@attrs.define
class Cluster:
    bed: NetBed
    driver: Driver
    procs: dict[str, Any]  # host name -> its Nexq or redis process
    record: str  # one line per execution of a "record" task (sample_app)
    worker_host: dict[str, str] = attrs.Factory(dict)  # worker id -> host name
    enqueued: int = 0  # tasks this module enqueued, for the store-wide counters

    def enqueue(self, tasks: list[dict[str, Any]]) -> list[str]:
        ids = self.driver.enqueue(tasks)
        self.enqueued += len(ids)
        return ids

    def worker_of(self, host: str) -> dict[str, Any] | None:
        """The registry entry of ``host``'s worker, if it is listed."""
        return next((w for w in self.driver.workers() if w["host"] == self.bed[host].netns), None)


def _root_links() -> list[str]:
    """The root namespace's links and addresses, to show the bed adds none."""
    return sorted(ip("-o", "link").splitlines() + ip("-o", "addr").splitlines())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("scaleout")
    print(f"process logs in {logs}")  # shown when a test fails
    root_before = _root_links()
    with NetBed(["a", "b", "c", "d", "t"], egress_counters=True) as bed:
        assert _root_links() == root_before  # the bed lives in its namespaces only
        a, b, t = bed["a"], bed["b"], bed["t"]
        procs: dict[str, Any] = {
            "a": a.popen(redis_argv(find_redis_server(), a, STORE_PORT, str(logs)), log=str(logs / "a.log"))
        }
        driver = Driver(api_socket=t.forward(b.addr, API_PORT), store_socket=t.forward(a.addr, STORE_PORT))
        wait_for(driver.store.ping, 15, "redis-server on host a")
        cl = Cluster(bed, driver, procs, str(logs / "runs.txt"))
        env = nexq_env(NEXQ_TEST_RECORD=cl.record)
        common = ["--store", f"redis://{a.addr}:{STORE_PORT}", "--app", APP, "--lease", str(LEASE)]
        procs["b"] = b.popen(
            nexq_argv("run", *common, "--host", "0.0.0.0", "--port", str(API_PORT),
                      "--no-worker", "--save-interval", "0"),  # SAVE is for Pogocache
            env=env, log=str(logs / "b.log"), cwd=ROOT)
        for name in ("c", "d"):
            procs[name] = bed[name].popen(
                nexq_argv("worker", *common, "--concurrency", str(CONCURRENCY)),
                env=env, log=str(logs / f"{name}.log"), cwd=ROOT)
        wait_for(lambda: driver.api("GET", "/healthz"), 30, "nexq run on host b")
        workers = wait_for(lambda: ws if len(ws := driver.workers()) == 2 else None, 30,
                           "workers of hosts c and d in the registry")
        # Each host has its own host name (its namespace's): workers say where they run.
        by_name = {bed[h].netns: h for h in ("c", "d")}
        cl.worker_host = {w["id"]: by_name[w["host"]] for w in workers}
        assert {procs[h].pid for h in cl.worker_host.values()} == {w["pid"] for w in workers}
        try:
            yield cl
        finally:
            driver.close()
    assert bed.leftovers() == []  # every namespace (and so every link) is gone


def test_tasks_flow_from_api_host_to_both_worker_hosts(cluster: Cluster) -> None:
    ids = cluster.enqueue([{"type": "sleep", "payload": {"seconds": 0.01, "i": i}} for i in range(300)])
    tasks = cluster.driver.wait_statuses(ids, {"succeeded"}, 45)
    host_of_pid = {cluster.procs[h].pid: h for h in ("c", "d")}
    ran_on = collections.Counter(host_of_pid[t["result"]["pid"]] for t in tasks.values())
    assert set(ran_on) == {"c", "d"}, ran_on  # both worker hosts took work
    assert all([a["outcome"] for a in t["attempts"]] == ["succeeded"] for t in tasks.values())
    # The API on b lists exactly the two worker processes (b runs none).
    listed = cluster.driver.workers()
    assert sorted(cluster.worker_host[w["id"]] for w in listed) == ["c", "d"]
    assert not any(w["stale"] for w in listed)


def test_cut_link_is_a_crashed_worker_and_its_tasks_finish_on_the_other_host(cluster: Cluster) -> None:
    d = cluster.bed["d"]
    # 2 x CONCURRENCY long tasks: once all run, each worker host holds CONCURRENCY.
    ids = cluster.enqueue([{"type": "record", "payload": {"i": f"cut-{k}", "seconds": 4}}
                           for k in range(2 * CONCURRENCY)])
    running = cluster.driver.wait_statuses(ids, {"running"}, 20)
    on = {i: cluster.worker_host[t["attempts"][-1]["worker"]] for i, t in running.items()}
    on_d = sorted(i for i in ids if on[i] == "d")
    assert len(on_d) == CONCURRENCY, on

    d.link_down()
    # To the rest of the bed d now looks dead: no heartbeat, flagged stale.
    wait_for(lambda: (w := cluster.worker_of("d")) is None or w["stale"], 10, "worker d flagged stale")
    done = cluster.driver.wait_statuses(ids, {"succeeded"}, 40)
    c_id = next(w for w, h in cluster.worker_host.items() if h == "c")
    for i, t in done.items():
        outcomes = [a["outcome"] for a in t["attempts"]]
        if i in on_d:  # lease expired, retried at once elsewhere: only c is left
            assert outcomes == ["lost", "succeeded"], t["attempts"]
        else:
            assert outcomes == ["succeeded"], t["attempts"]
        assert t["attempts"][-1]["worker"] == c_id

    # d comes back: it rejoins by itself, and its late results change nothing.
    up_at = time.time()
    d.link_up()

    def d_back_and_settled() -> bool:
        # A worker drops an attempt from "running" once its outcome was
        # recorded or could not be: then no late ack of d's is in flight.
        w = cluster.worker_of("d")
        return bool(w and not w["stale"] and w["last_heartbeat"] > up_at and not w["running"])

    wait_for(d_back_and_settled, 30, "worker d heartbeating, nothing running, after its link came back")
    assert cluster.procs["d"].poll() is None  # the partition did not kill it
    after = cluster.driver.tasks(ids)
    assert {i: t["attempts"] for i, t in after.items()} == {i: t["attempts"] for i, t in done.items()}
    with open(cluster.record) as f:
        runs = collections.Counter(line.strip() for line in f if line.startswith("cut-"))
    # Every task ran once on its first host; d's four ran a second time on c.
    expected = {f"cut-{k}": 1 for k in range(2 * CONCURRENCY)}
    for i in on_d:
        expected[done[i]["payload"]["i"]] = 2
    assert runs == expected
    # The store's succeeded counter equals the tasks enqueued: none counted twice.
    [default] = [q for q in cluster.driver.api("GET", "/api/queues")["queues"] if q["name"] == "default"]
    assert default["succeeded"] == cluster.enqueued


def test_nothing_leaves_the_bed(cluster: Cluster) -> None:
    bed = cluster.bed
    assert bed.foreign_config() == {ns: [] for ns in bed.namespaces}  # no default route, no other address
    for host in bed.hosts.values():  # and so no way out
        assert unreachable_from(host) == errno.ENETUNREACH, host
    subnet, addr_of = bed.subnet, {h.addr: name for name, h in bed.hosts.items()}

    # Everything the store serves connects from a bed address: b (API,
    # scheduler), c and d (workers), t (the forwarder of this test).
    clients = [c["addr"].rsplit(":", 1)[0] for c in cluster.driver.store.client_list()]
    assert all(ipaddress.ip_address(c) in subnet for c in clients), clients
    assert {"b", "c", "d", "t"} <= {addr_of[c] for c in clients}

    # Each worker advertises its doorbell on its own host's bed address.
    wakes = {cluster.worker_host[w["id"]]: w["wake"] for w in cluster.driver.workers()}
    assert sorted(wakes) == ["c", "d"]
    for name, (host, port) in wakes.items():
        assert host == bed[name].addr and port > 0

    # No packet went to a destination outside the subnet, from any host or
    # across the bridge, during all of the above.
    assert bed.egress_packets() == {ns: 0 for ns in bed.namespaces}
