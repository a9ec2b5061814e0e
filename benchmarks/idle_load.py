"""Idle store load of N `nexq worker` processes (worker + scheduler agents).

    python benchmarks/idle_load.py [--processes 1,8] [--seconds 10] [--url URL]
                                   [--lateness 200]

For each N: start N `nexq worker` processes (the scheduler agents run by
default) on a redis-server addressed as ``pogocache://`` (so the periodic
SAVE runs, as on Pogocache), wait until all N are registered and settled,
then count the commands the server executed over ``--seconds`` with no task
flowing (``INFO commandstats`` deltas, this script's own INFOs excluded).
With ``--lateness K``, K delayed tasks (due 0.5-3 s ahead) then run on the
same N processes and the lateness of their handler start after the due time
is reported (p50 / p99 / max), so a cheaper idle poll can be checked not to
delay due tasks. Without ``--url``, a throw-away local redis-server.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from typing import Any

import redis
import trio
from common import local_redis, machine_line

from nexq.app import Nexq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = "tests.runtime.sample_app:app"
SETTLE = 3.0  # seconds after the last registration before counting (start-up work done)


def calls(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k != "cmdstat_info"}


def spawn_workers(url: str, ns: str, n: int) -> list[subprocess.Popen[bytes]]:
    # Store and namespace from the environment, as a deployment would set them.
    env = {**os.environ, "PYTHONPATH": ROOT, "NEXQ_STORE": url, "NEXQ_NAMESPACE": ns}
    return [subprocess.Popen([sys.executable, "-m", "nexq.cli.main", "worker", "--app", APP,
                              "--log-level", "error"], cwd=ROOT, env=env) for _ in range(n)]


def wait_registered(client: Any, ns: str, n: int, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        top = int(client.get(f"{ns}:wseq") or 0)
        live = [v for v in client.mget([f"{ns}:wslot:{i}" for i in range(1, top + 1)]) if v] if top else []
        if len(live) >= n:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{n} workers did not register within {limit:.0f} s")


async def lateness(url: str, ns: str, count: int) -> list[float]:
    """Handler start minus due time, in ms, of ``count`` delayed tasks."""
    app = Nexq(url, namespace=ns)
    rng = random.Random(1)
    async with app.connect():
        handles = await app.enqueue_many([("stamp", None, {"delay": rng.uniform(0.5, 3.0)})
                                          for _ in range(count)])
        out = []
        for h in handles:
            started = await h.result(timeout=60)
            out.append((started - (await h.info()).spec.run_at) * 1000)
    return sorted(out)


def measure(url: str, n: int, seconds: float, late_count: int) -> dict[str, Any]:
    ns = f"idle{n}x{os.getpid()}"
    client = redis.Redis.from_url(url.replace("pogocache://", "redis://"), protocol=2)
    procs = spawn_workers(url, ns, n)
    try:
        wait_registered(client, ns, n)
        time.sleep(SETTLE)
        before, t0 = calls(client), time.monotonic()
        time.sleep(seconds)
        after, t1 = calls(client), time.monotonic()
        span = t1 - t0
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        total = sum(delta.values()) / span
        row: dict[str, Any] = {
            "processes": n, "per_s": total, "per_process_s": total / n,
            "save_per_s": delta.get("save", 0) / span,
            "top": sorted(((k, v / span) for k, v in delta.items() if v), key=lambda kv: -kv[1])[:6],
        }
        if late_count:
            lat = trio.run(lateness, url, ns, late_count)
            row["late_ms"] = (lat[len(lat) // 2], lat[int(len(lat) * 0.99)], lat[-1])
        return row
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        client.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="a redis:// server to use (addressed as pogocache:// so SAVE runs)")
    ap.add_argument("--processes", default="1,8")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--lateness", type=int, default=0, help="delayed tasks to time afterwards (0: none)")
    a = ap.parse_args()
    counts = [int(x) for x in a.processes.split(",")]
    print(machine_line())
    print(f"\nidle `nexq worker` processes (worker + scheduler agents), {a.seconds:g} s, "
          "INFO commandstats deltas\n")
    head = "| processes | commands/s | per process | SAVE/s | top commands/s |"
    rule = "|---:|---:|---:|---:|---|"
    if a.lateness:
        head += " due lateness p50 / p99 / max ms |"
        rule += "---|"
    print(head + "\n" + rule)

    def run(url: str) -> None:
        url = url.replace("redis://", "pogocache://")
        for n in counts:
            r = measure(url, n, a.seconds, a.lateness)
            top = ", ".join(f"{k} {v:.1f}" for k, v in r["top"])
            line = f"| {n} | {r['per_s']:.1f} | {r['per_process_s']:.1f} | {r['save_per_s']:.2f} | {top} |"
            if "late_ms" in r:
                line += " {:.0f} / {:.0f} / {:.0f} |".format(*r["late_ms"])
            print(line, flush=True)

    if a.url:
        run(a.url)
    else:
        with local_redis() as url:
            run(url)


if __name__ == "__main__":
    main()
