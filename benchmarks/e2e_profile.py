"""End to end, in one process: enqueue (bulk) -> claim -> no-op handler -> ack.

    python benchmarks/e2e_profile.py [--url URL | --url redis | --url pogocache=BIN]
        [--tasks N] [--repeat K] [--concurrency C] [--batch B] [--pyinstrument FILE]

Per task: tasks/s (wall), store commands and round trips (an MGET or a
pipeline of k commands is one round trip; an MGET is one command), this
process's CPU (``time.process_time``) and, for a server this script starts
(``redis`` = a throw-away redis-server, ``pogocache=BIN`` = that Pogocache
binary), the server's CPU from /proc. The producer uses ``enqueue_many`` in
batches, the Worker runs in the same trio process (as ``peers.py``'s
"in-process worker" scenario). Default: the embedded store (``memory://``).
``--pyinstrument`` needs ``pip install pyinstrument`` (not a dependency).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio
from common import Counting, machine_line, wait_port

from nexq.app import Nexq
from nexq.config import Settings
from nexq.runtime.runtime import Runtime
from nexq.runtime.worker import Worker
from nexq.store import open_store

WARMUP = 50


def server_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) the process ``pid`` has used; 0 if unknown."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def local_pogocache(binary: str) -> Iterator[tuple[str, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "-p", str(port), "--maxmemory", "unlimited"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, "pogocache")
        yield f"pogocache://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


async def run_once(url: str, n: int, concurrency: int, batch: int, pid: int | None,
                   profiler: Any = None) -> dict[str, float]:
    app = Nexq()

    @app.task("noop", max_retries=0)
    async def noop(payload: Any) -> None:
        return None

    async with open_store(url) as raw:
        store = Counting(raw)
        settings = Settings(store=url, namespace="e2e" + uuid.uuid4().hex[:8], retention=600)
        rt = Runtime.build(settings, store, app=app)
        app.bind(rt)
        worker = Worker(rt, app, concurrency=concurrency)
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await app.enqueue_many([("noop", i) for i in range(WARMUP)])
            while worker.processed < WARMUP:
                await trio.sleep(0.005)
            store.round_trips = store.commands = 0
            cpu0, srv0, t0 = time.process_time(), server_cpu(pid), time.perf_counter()
            if profiler is not None:
                profiler.start()
            for lo in range(0, n, batch):
                await app.enqueue_many([("noop", i) for i in range(lo, min(lo + batch, n))])
            while worker.processed < WARMUP + n:
                await trio.sleep(0.002)
            if profiler is not None:
                profiler.stop()
            wall = time.perf_counter() - t0
            cpu, srv = time.process_time() - cpu0, server_cpu(pid) - srv0
            cmds, rts = store.commands, store.round_trips
            worker.stop()
        app.bind(None)
    return {"rate": n / wall, "cmds": cmds / n, "rts": rts / n, "cpu_us": cpu / n * 1e6,
            "srv_us": srv / n * 1e6, "cmds_per_s": cmds / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="memory://",
                    help="store URL; 'redis' starts a redis-server, 'pogocache=BIN' that binary")
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--pyinstrument", metavar="FILE", help="profile the last run into FILE (text)")
    args = ap.parse_args()

    def runs(url: str, pid: int | None) -> list[dict[str, float]]:
        out = []
        for k in range(args.repeat):
            prof = None
            if args.pyinstrument and k == args.repeat - 1:
                from pyinstrument import Profiler

                prof = Profiler(async_mode="disabled", interval=0.0005)
            out.append(trio.run(run_once, url, args.tasks, args.concurrency, args.batch, pid, prof))
            if prof is not None:
                with open(args.pyinstrument, "w") as f:
                    f.write(prof.output_text(unicode=False, show_all=False))
        return out

    if args.url == "redis":
        label = "redis-server"
        from tests.servers import redis_server

        with redis_server() as server:
            results = runs(server.url, server.proc.pid if server.proc else None)
    elif args.url.startswith("pogocache="):
        label = "pogocache"
        with local_pogocache(args.url.split("=", 1)[1]) as (url, pid):
            results = runs(url, pid)
    else:
        label = args.url.split("://")[0]
        results = runs(args.url, None)

    print(f"Machine: {machine_line()}")
    print(f"e2e_profile: {label}, {args.tasks} no-op tasks, enqueue_many batches of {args.batch}, "
          f"in-process Worker (concurrency {args.concurrency}), {args.repeat} runs\n")
    print("| run | tasks/s | commands/task | round trips/task | client CPU µs/task | server CPU µs/task | commands/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(results, 1):
        print(f"| {i} | {r['rate']:,.0f} | {r['cmds']:.2f} | {r['rts']:.2f} | {r['cpu_us']:.0f} | "
              f"{r['srv_us']:.0f} | {r['cmds_per_s']:,.0f} |")
    best = max(results, key=lambda r: r["rate"])
    print(f"\nbest: {best['rate']:,.0f} tasks/s, {best['cmds']:.2f} commands/task, {best['rts']:.2f} round trips/task, "
          f"{best['cpu_us']:.0f} µs client CPU/task, {best['srv_us']:.0f} µs server CPU/task")


if __name__ == "__main__":
    main()
