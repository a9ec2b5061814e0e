"""Footprint: an idle worker's CPU, store bytes per pending task, RSS over a soak.

    python benchmarks/footprint.py [--idle-seconds 30] [--soak-seconds 120]

Starts its own redis-server. Idle CPU: a `nexq worker` with nothing to do,
CPU time from /proc over --idle-seconds. Bytes per pending task: redis
`used_memory` (read with redis-py's INFO; Nexq never sends INFO) before and
after enqueueing 10,000 small tasks. RSS: a `nexq worker` processing a steady
stream of no-op tasks, sampled every 10 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import redis
import trio
from common import local_redis, machine_line

from nexq.app import Nexq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def worker(url: str, ns: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "nexq.cli.main", "worker", "--store", url, "--namespace", ns,
         "--app", "benchmarks.nexq_app:app", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})


async def enqueue_pending(url: str, ns: str, n: int) -> None:
    app = Nexq(url, namespace=ns)
    async with app.connect():
        for i in range(0, n, 1000):
            await app.enqueue_many([("noop", {"i": j}) for j in range(i, i + 1000)])


async def stream(url: str, ns: str, seconds: float, rate: float) -> int:
    app = Nexq(url, namespace=ns)
    sent = 0
    async with app.connect():
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            await app.enqueue_many([("noop", None) for _ in range(int(rate / 10))])
            sent += int(rate / 10)
            await trio.sleep(0.1)
    return sent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle-seconds", type=float, default=30)
    ap.add_argument("--soak-seconds", type=float, default=120)
    ap.add_argument("--rate", type=float, default=500)
    args = ap.parse_args()
    print(machine_line())
    with local_redis() as url:
        r = redis.Redis.from_url(url, protocol=2)
        w = worker(url, "idle")
        time.sleep(3)
        c0 = cpu_seconds(w.pid)
        time.sleep(args.idle_seconds)
        idle = (cpu_seconds(w.pid) - c0) / args.idle_seconds * 100
        w.terminate()
        w.wait()
        print(f"idle worker CPU: {idle:.2f}% of a core over {args.idle_seconds:.0f} s")

        before = int(r.info("memory")["used_memory"])
        trio.run(enqueue_pending, url, "pending", 10_000)
        after = int(r.info("memory")["used_memory"])
        print(f"store bytes per pending task (redis used_memory): {(after - before) / 10_000:.0f}")

        w = worker(url, "soak")
        time.sleep(3)
        samples = []

        async def run() -> int:
            async with trio.open_nursery() as n:
                async def sample() -> None:
                    while True:
                        samples.append(rss_mb(w.pid))
                        await trio.sleep(10)
                n.start_soon(sample)
                sent = await stream(url, "soak", args.soak_seconds, args.rate)
                n.cancel_scope.cancel()
            return sent

        sent = trio.run(run)
        w.terminate()
        w.wait()
        print(f"worker RSS (MB) every 10 s while processing {args.rate:.0f} tasks/s "
              f"({sent} tasks): {' '.join(f'{s:.1f}' for s in samples)}")


if __name__ == "__main__":
    main()
