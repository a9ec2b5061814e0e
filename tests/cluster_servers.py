"""A throw-away Redis Cluster for tests: N primaries (+ replicas) of
redis-server on free loopback ports (each with its cluster bus port free),
formed with ``redis-cli`` (slots, MEET, REPLICATE: see :func:`form`).

Tests own it: they may kill a primary, promote its replica, move slots.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

from tests.servers import RedisServer

NODE_TIMEOUT_MS = 1000  # a dead primary is failed over after about this long


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = random.randrange(20000, 45000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


def redis_cli(port: int, *args: str, timeout: float = 10) -> str:
    """``redis-cli -p PORT ARGS``'s output; raises CalledProcessError on failure."""
    cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
    return subprocess.run([cli, "-p", str(port), *args], check=True, capture_output=True, text=True,
                          timeout=timeout).stdout


@attrs.define
class RedisCluster:
    """The running cluster: its servers, primaries first."""

    servers: list[RedisServer]
    primaries: int

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    @property
    def url(self) -> str:
        """A cluster URL with every primary as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[: self.primaries])

    def server(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def live_ports(self) -> list[int]:
        return [s.port for s in self.servers if s.proc is not None]

    def state_ok(self, port: int | None = None) -> bool:
        """Whether ``port`` (else every live node) says ``cluster_state:ok``."""
        for p in [port] if port is not None else self.live_ports():
            try:
                if "cluster_state:ok" not in redis_cli(p, "cluster", "info", timeout=2):
                    return False
            except (subprocess.SubprocessError, OSError):
                return False
        return True

    def nodes(self) -> list[list[str]]:
        """``CLUSTER NODES`` as a live node sees it, one field list per node."""
        for p in self.live_ports():
            try:
                return [ln.split() for ln in redis_cli(p, "cluster", "nodes", timeout=2).splitlines() if ln]
            except (subprocess.SubprocessError, OSError):
                continue
        raise RuntimeError("no cluster node answers")

    def owner(self, slot: int) -> int:
        """The port of the primary serving ``slot``, as a live node sees it."""
        for fields in self.nodes():
            if "master" in fields[2] and "fail" not in fields[2]:
                for r in fields[8:]:
                    if r.startswith("["):
                        continue
                    low, _, high = r.partition("-")
                    if int(low) <= slot <= int(high or low):
                        return int(fields[1].split("@")[0].rsplit(":", 1)[1])
        raise LookupError(f"no primary serves slot {slot}")

    def replica_of(self, port: int) -> int:
        """The port of a live replica of the primary at ``port``."""
        nodes = self.nodes()
        ids = {f[0]: int(f[1].split("@")[0].rsplit(":", 1)[1]) for f in nodes}
        for f in nodes:
            if "slave" in f[2] and ids.get(f[3]) == port and self.server(ids[f[0]]).proc is not None:
                return ids[f[0]]
        raise LookupError(f"no replica of {port}")


def form(cluster: RedisCluster, replicas: int) -> None:
    """Give each primary an equal range of slots, introduce every node,
    attach ``replicas`` per primary. (By hand, not ``redis-cli --cluster
    create``: that refuses fewer than 3 primaries, which the benchmark needs.)"""
    n, ports = cluster.primaries, cluster.ports
    for i, port in enumerate(ports[:n]):
        redis_cli(port, "cluster", "addslotsrange", str(i * 16384 // n), str((i + 1) * 16384 // n - 1))
        redis_cli(port, "cluster", "set-config-epoch", str(i + 1))
    for port in ports[1:]:
        redis_cli(ports[0], "cluster", "meet", "127.0.0.1", str(port))
    deadline = time.monotonic() + 20
    while any(len(redis_cli(p, "cluster", "nodes").splitlines()) < len(ports) for p in ports):
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster nodes did not meet")
        time.sleep(0.05)
    for j, port in enumerate(ports[n:]):
        primary_id = redis_cli(ports[j % n], "cluster", "myid").strip()
        while True:  # the replica must know the primary as such first
            try:
                redis_cli(port, "cluster", "replicate", primary_id)
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    while replicas and any("master_link_status:up" not in redis_cli(p, "info", "replication") for p in ports[n:]):
        if time.monotonic() > deadline:
            raise RuntimeError("the replicas did not sync")
        time.sleep(0.05)


def wait_ok(cluster: RedisCluster, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cluster.state_ok():
        if time.monotonic() > deadline:
            raise RuntimeError("the cluster did not reach cluster_state:ok")
        time.sleep(0.05)


@contextmanager
def redis_cluster(primaries: int = 3, replicas: int = 1, *extra: str) -> Iterator[RedisCluster]:
    """A running cluster of ``primaries`` with ``replicas`` each (replica
    ``j`` follows primary ``j % primaries``), stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="nexq-cluster-") as root:
        servers = []
        for _ in range(primaries * (1 + replicas)):
            port = cluster_port()
            d = os.path.join(root, str(port))
            os.mkdir(d)
            servers.append(RedisServer(port=port, dir=d, args=[
                "--cluster-enabled", "yes", "--cluster-config-file", os.path.join(d, "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                # the other shards keep serving while one fails over
                "--cluster-require-full-coverage", "no", *extra]))
        cluster = RedisCluster(servers, primaries)
        try:
            for s in servers:
                s.start()
            form(cluster, replicas)
            wait_ok(cluster)
            yield cluster
        finally:
            for s in servers:
                s.stop(kill=True)
