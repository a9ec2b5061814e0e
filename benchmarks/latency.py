"""Pick-up latency: enqueue -> handler start, open loop, idle workers.

    python benchmarks/latency.py [--url URL] [--rate 200] [--count 1000]

In-process: a Worker in the producer's trio process (the local wake-up).
Across processes: a `nexq worker` process woken by its UDP doorbell (not for
the embedded store, which lives in one process). Without --url: the embedded
store in-process, then a local redis-server both ways.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import trio
from common import local_redis, machine_line

from nexq.app import Nexq
from nexq.cli.bench import send_open_loop
from nexq.config import Settings
from nexq.runtime.runtime import Runtime
from nexq.runtime.worker import Worker
from nexq.store import open_store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def summary(label: str, lat: list[float]) -> str:
    lat = sorted(lat)
    n = len(lat)
    return (f"| {label} | {n} | {lat[n // 2]:.2f} | {lat[int(n * 0.99)]:.2f} | {lat[-1]:.2f} |")


async def in_process(url: str, rate: float, count: int) -> list[float]:
    async with open_store(url) as store:
        app = Nexq()
        starts: dict[str, float] = {}

        @app.task("stamp")
        async def stamp(ctx: object, payload: object) -> None:
            starts[ctx.id] = time.time()  # type: ignore[attr-defined]

        rt = Runtime.build(Settings(namespace=f"lat{os.getpid()}"), store, app=app)
        app.bind(rt)
        async with trio.open_nursery() as n:
            await n.start(Worker(rt, app, concurrency=10).run)
            await trio.sleep(0.5)
            sent = await send_open_loop(app, "stamp", rate, count)
            await trio.sleep(1)
            n.cancel_scope.cancel()
    return [(starts[k] - v) * 1000 for k, v in sent.items() if k in starts]


async def across(url: str, rate: float, count: int) -> list[float]:
    ns = f"latx{os.getpid()}"
    w = subprocess.Popen([sys.executable, "-m", "nexq.cli.main", "worker", "--store", url, "--namespace", ns,
                          "--app", "tests.runtime.sample_app:app", "--log-level", "warning"],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        app = Nexq(url, namespace=ns)
        async with app.connect():
            await trio.sleep(2)  # the worker registers its doorbell
            sent = await send_open_loop(app, "stamp", rate, count)
            return [((await app.handle(k).result(timeout=30)) - v) * 1000 for k, v in sent.items()]
    finally:
        w.terminate()
        w.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--count", type=int, default=1000)
    a = ap.parse_args()
    print(machine_line(), f"\nopen loop at {a.rate:.0f} tasks/s\n")
    print("| where | tasks | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|")
    if a.url:
        print(summary(f"{a.url.split(':')[0]}, in-process", trio.run(in_process, a.url, a.rate, a.count)))
        if not a.url.startswith("memory"):
            print(summary(f"{a.url.split(':')[0]}, worker process", trio.run(across, a.url, a.rate, a.count)))
        return
    print(summary("embedded, in-process", trio.run(in_process, "memory://", a.rate, a.count)))
    with local_redis() as url:
        print(summary("redis-server, in-process", trio.run(in_process, url, a.rate, a.count)))
        print(summary("redis-server, worker process", trio.run(across, url, a.rate, a.count)))


if __name__ == "__main__":
    main()
