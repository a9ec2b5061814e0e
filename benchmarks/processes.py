"""Throughput of no-op tasks with ``nexq worker --processes 1`` vs ``--processes 2``.

    .venv/bin/python benchmarks/processes.py [--store redis://...] [--tasks 20000] [--processes 1,2]
        [--rounds 3] [--out-dir DIR]

For each process count and round: start ``nexq worker --processes N --app
benchmarks.processes_app:app`` (its children are the only consumers) on a
namespace of its own, wait until its N workers registered, then this script,
a separate producer process, measures two things:

- **end to end**: enqueue ``--tasks`` ``--type`` tasks (``noop``, or ``cpu_1ms``: 1 ms of CPU each) in batches of 1,000
  (``enqueue_many``) while the workers consume; from the first enqueue until
  the queue's succeeded counter reaches ``--tasks``;
- **drain**: the same number enqueued into a paused queue, then resumed;
  from the resume until all succeeded (the consumers alone).

Without ``--store`` a throw-away redis-server is started on a free port.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

import trio
from common import local_redis, machine_line, write_results

from nexq import Nexq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 1000


async def wait_workers(app: Nexq, count: int, limit: float = 60) -> None:
    with trio.fail_after(limit):
        while len(await app._runtime.registry.list()) < count:  # type: ignore[union-attr]
            await trio.sleep(0.05)


async def succeeded(app: Nexq) -> int:
    [stats] = await app.broker.inspector().queue_stats(["default"])
    return int(stats["succeeded"])


async def wait_succeeded(app: Nexq, n: int, limit: float = 600) -> float:
    """The time at which the queue's succeeded counter reached ``n``."""
    with trio.fail_after(limit):
        while await succeeded(app) < n:
            await trio.sleep(0.01)
    return time.perf_counter()


async def enqueue(app: Nexq, n: int, type: str) -> None:
    for start in range(0, n, BATCH):
        await app.enqueue_many([(type, None)] * min(BATCH, n - start))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_usage(store: str) -> tuple[float, int]:
    """The server's CPU seconds and commands processed so far."""
    import redis

    info = redis.Redis.from_url(store, protocol=2).info()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"]), int(info["total_commands_processed"])


async def one_round(store: str, processes: int, tasks: int, concurrency: int, type: str) -> dict[str, float]:
    ns = f"bench-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "nexq.cli.main", "worker", "--processes", str(processes), "--app",
           "benchmarks.processes_app:app", "--store", store, "--namespace", ns, "--log-level", "error",
           "--concurrency", str(concurrency)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXQ_")}
    worker = await trio.lowlevel.open_process(cmd, cwd=ROOT, env={**env, "PYTHONPATH": ROOT})
    try:
        app = Nexq(store, namespace=ns)
        async with app.connect():
            await wait_workers(app, processes)
            pids = [w["pid"] for w in await app._runtime.registry.list()]  # type: ignore[union-attr]
            cpu0, (redis0, cmds0), mine0 = sum(map(cpu_seconds, pids)), redis_usage(store), time.process_time()
            started = time.perf_counter()
            await enqueue(app, tasks, type)
            e2e = await wait_succeeded(app, tasks) - started
            redis1, cmds1 = redis_usage(store)
            cpu = {"workers_us": (sum(map(cpu_seconds, pids)) - cpu0) / tasks * 1e6,
                   "redis_us": (redis1 - redis0) / tasks * 1e6, "commands": (cmds1 - cmds0) / tasks,
                   "producer_us": (time.process_time() - mine0) / tasks * 1e6}
            inspector = app.broker.inspector()
            await inspector.pause("default")
            await enqueue(app, tasks, type)
            started = time.perf_counter()
            await inspector.resume("default")
            drain = await wait_succeeded(app, 2 * tasks) - started
    finally:
        worker.terminate()
        with trio.move_on_after(60):
            await worker.wait()
    return {"e2e": tasks / e2e, "drain": tasks / drain, **cpu}


async def run(store: str, counts: list[int], tasks: int, rounds: int, concurrency: int,
              type: str) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for n in counts:
        results = [await one_round(store, n, tasks, concurrency, type) for _ in range(rounds)]
        out[n] = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(f"--processes {n}: end to end {out[n]['e2e']:,.0f} tasks/s, drain {out[n]['drain']:,.0f} tasks/s "
              f"(rounds: {[round(r['e2e']) for r in results]}, {[round(r['drain']) for r in results]}); "
              f"CPU per task end to end: workers {out[n]['workers_us']:.0f} µs, redis {out[n]['redis_us']:.0f} µs, "
              f"producer {out[n]['producer_us']:.0f} µs; {out[n]['commands']:.1f} store commands per task")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", help="a RESP store URL (default: a throw-away redis-server)")
    p.add_argument("--tasks", type=int, default=20_000)
    p.add_argument("--processes", default="1,2", help="comma-separated process counts")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--type", default="noop", choices=["noop", "cpu_1ms"], help="the task type (default noop)")
    p.add_argument("--concurrency", type=int, default=10, help="handler slots per worker process (default 10)")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "benchmarks", "results"))
    args = p.parse_args()
    counts = [int(c) for c in args.processes.split(",")]

    def measure(store: str) -> dict[int, dict[str, float]]:
        return trio.run(run, store, counts, args.tasks, args.rounds, args.concurrency, args.type)

    if args.store:
        found, where = measure(args.store), args.store
    else:
        with local_redis() as url:
            found, where = measure(url), "a local redis-server"
    rows = "\n".join(f"| `nexq worker --processes {n} --concurrency {args.concurrency}` | {r['e2e']:,.0f} | {r['drain']:,.0f} | "
                     f"{r['workers_us']:.0f} / {r['redis_us']:.0f} / {r['producer_us']:.0f} | {r['commands']:.1f} |"
                     for n, r in found.items())
    md = (f"# nexq worker --processes: {args.type} tasks/s\n\n{machine_line()}; {where}; {args.tasks:,} tasks, "
          f"batches of {BATCH}, median of {args.rounds} rounds\n\n"
          "| command | end to end (enqueue while consuming) | drain (pre-filled queue) | "
          "CPU µs per task end to end: workers / redis / producer | store commands per task |\n"
          "|---|---|---|---|---|\n"
          f"{rows}\n")
    write_results(args.out_dir, f"processes-{args.type}-c{args.concurrency}-{time.strftime('%Y-%m-%d')}",
                  {"type": args.type, "concurrency": args.concurrency, "machine": machine_line(), "tasks": args.tasks, "rounds": args.rounds, "results": found}, md)


if __name__ == "__main__":
    main()
