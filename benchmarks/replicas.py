"""The cost of --store-replicas: WAIT after each enqueue and outcome decision.

    python benchmarks/replicas.py [--enqueues 2000] [--tasks 5000] [--rounds 3]

Starts a local redis-server primary and one replica (127.0.0.1, free ports)
and measures, with 0 and with 1 replica required:

- sequential ``nexq.Client.enqueue``: one call after another from one
  thread (latency per call and calls per second);
- end to end: ``--tasks`` no-op tasks enqueued by 20 concurrent producers
  into an in-process runtime (worker + scheduler, concurrency 50) until
  all have succeeded (tasks per second).

Rounds alternate 0 and 1 so that drift on a shared machine hits both.
Results go to benchmarks/results/replicas-DATE.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio
from common import machine_line, wait_port, write_results

import nexq
from nexq.app import Nexq
from nexq.config import Settings
from nexq.runtime.service import Service, run_service

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def primary_and_replica() -> Iterator[str]:
    """redis://127.0.0.1:P of a primary whose one replica is in sync."""
    with tempfile.TemporaryDirectory(prefix="nexq-bench-replicas-") as d:
        procs: list[subprocess.Popen[bytes]] = []
        try:
            primary = free_port()
            for name, extra in (("a", []), ("b", ["--replicaof", "127.0.0.1", str(primary)])):
                port = primary if name == "a" else free_port()
                os.makedirs(os.path.join(d, name))
                procs.append(subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", os.path.join(d, name),
                     "--repl-diskless-sync-delay", "0", *extra],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                wait_port(port, procs[-1], f"redis-server {name}")
            deadline = time.monotonic() + 20
            while b"state=online" not in subprocess.run(
                    ["redis-cli", "-p", str(primary), "INFO", "replication"], capture_output=True, check=False).stdout:
                if time.monotonic() > deadline:
                    raise RuntimeError("the replica did not come online")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{primary}"
        finally:
            for p in procs:
                p.kill()
                p.wait()


def sequential(url: str, replicas: int, n: int, ns: str) -> dict[str, float]:
    client = nexq.Client(url, namespace=ns, replicas=replicas)
    client.enqueue("noop", 0)  # connect outside the measurement
    lat: list[float] = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        client.enqueue("noop", i)
        lat.append(time.perf_counter() - t)
    took = time.perf_counter() - start
    client.close()
    lat.sort()
    return {"per_s": n / took, "p50_us": lat[n // 2] * 1e6, "p99_us": lat[int(n * 0.99)] * 1e6}


async def end_to_end(url: str, replicas: int, n: int, ns: str) -> float:
    app = Nexq()
    done = trio.Event()
    count = 0

    @app.task("noop", max_retries=0)
    async def noop(payload: Any) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    settings = Settings(store=url, namespace=ns, store_replicas=replicas, concurrency=50, save_interval=0,
                        shutdown_grace=1, log_level="WARNING")
    async with trio.open_nursery() as nursery:
        svc: Service = await nursery.start(lambda task_status: run_service(
            settings, app, api=False, handle_signals=False, task_status=task_status))
        start = time.perf_counter()

        async def produce(k: int) -> None:
            for i in range(k, n, 20):
                await app.enqueue("noop", i)

        async with trio.open_nursery() as producers:
            for k in range(20):
                producers.start_soon(produce, k)
        await done.wait()
        took = time.perf_counter() - start
        svc.stop.set()
    return n / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enqueues", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: dict[int, dict[str, list[float]]] = {0: {}, 1: {}}
    with primary_and_replica() as url:
        for r in range(args.rounds):
            for replicas in (0, 1):
                got = sequential(url, replicas, args.enqueues, f"bs{r}{replicas}")
                got["e2e_per_s"] = trio.run(end_to_end, url, replicas, args.tasks, f"be{r}{replicas}")
                for k, v in got.items():
                    rows[replicas].setdefault(k, []).append(v)
                print(f"round {r + 1}, replicas {replicas}: " + ", ".join(f"{k} {v:,.0f}" for k, v in got.items()))
    med = {rep: {k: statistics.median(v) for k, v in cols.items()} for rep, cols in rows.items()}
    date = time.strftime("%Y-%m-%d")
    md = [f"# --store-replicas cost ({date})", "",
          (f"`python benchmarks/replicas.py --enqueues {args.enqueues} --tasks {args.tasks} --rounds {args.rounds}`"
           f" on {machine_line()}; redis-server primary + 1 replica on 127.0.0.1; medians of {args.rounds} rounds."),
          "", "| replicas | Client.enqueue/s | enqueue p50 µs | enqueue p99 µs | end-to-end tasks/s |",
          "|---|---|---|---|---|"]
    for rep in (0, 1):
        m = med[rep]
        md.append(f"| {rep} | {m['per_s']:,.0f} | {m['p50_us']:,.0f} | {m['p99_us']:,.0f} | {m['e2e_per_s']:,.0f} |")
    # Each round's 1-replica figure over the same round's 0: drift cancels.
    ratio = {k: statistics.median(b / a for a, b in zip(rows[0][k], rows[1][k], strict=True)) for k in rows[0]}
    md.append(f"| 1 / 0, median of the rounds' ratios | {ratio['per_s']:.2f} | {ratio['p50_us']:.2f} | "
              f"{ratio['p99_us']:.2f} | {ratio['e2e_per_s']:.2f} |")
    write_results(OUT, f"replicas-{date}", {"args": vars(args), "rounds": rows, "median": med, "ratio": ratio}, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
