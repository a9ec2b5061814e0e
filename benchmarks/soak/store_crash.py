"""Measure what a store crash loses: kill -9 the store mid-run, restart it.

    python benchmarks/soak/store_crash.py --pogocache-bin /path/to/pogocache [--save-interval 5]
    python benchmarks/soak/store_crash.py --redis-aof

Pogocache (a binary you already have: this script does not build it) runs
with --persist in a temp dir; a `nexq worker --with-scheduler` SAVEs every
--save-interval seconds; a producer enqueues at --rate tasks/s; the store
is killed with SIGKILL at a random moment and restarted from its file.
Reports acknowledged tasks that no longer exist (lost) against the bound
rate x save interval. With --redis-aof the store is redis-server with
appendfsync always (expected loss: 0).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import trio  # noqa: E402

from nexq.app import Nexq  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


def launch_store(pogocache_bin: str | None, port: int, d: str, *redis_args: str) -> subprocess.Popen[bytes]:
    """A persisting store on ``port`` with its files in ``d``: Pogocache
    (``--persist``) when a binary is given, else redis-server with ``redis_args``."""
    if pogocache_bin is None:
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "",
               *redis_args]
    else:
        cmd = [pogocache_bin, "-h", "127.0.0.1", "-p", str(port), "--maxmemory", "unlimited",
               "--persist", os.path.join(d, "nexq.db")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def start_store(args: argparse.Namespace, port: int, d: str) -> subprocess.Popen[bytes]:
    return launch_store(None if args.redis_aof else args.pogocache_bin, port, d,
                        "--appendonly", "yes", "--appendfsync", "always")


async def produce(url: str, rate: float, seconds: float, acked: list[str]) -> None:
    app = Nexq(url, namespace="crash")
    async with app.connect():
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < seconds:
            await trio.sleep(max(0.0, start + i / rate - time.monotonic()))
            try:
                acked.append((await app.enqueue("sleep", {"seconds": 30, "i": i})).id)
            except Exception:
                pass  # not acknowledged: not counted
            i += 1


async def count_missing(url: str, ids: list[str]) -> int:
    app = Nexq(url, namespace="crash")
    async with app.connect():
        ins = app._runtime.inspector  # type: ignore[union-attr]
        missing = 0
        for i in range(0, len(ids), 500):
            missing += sum(1 for t in await ins._load(ids[i : i + 500]) if t is None)
        return missing


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pogocache-bin")
    ap.add_argument("--redis-aof", action="store_true")
    ap.add_argument("--save-interval", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=12.0)
    args = ap.parse_args()
    if not args.redis_aof and not args.pogocache_bin:
        ap.error("give --pogocache-bin PATH or --redis-aof")
    port = free_port()
    scheme = "redis" if args.redis_aof else "pogocache"
    url = f"{scheme}://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as d:
        store = start_store(args, port, d)
        env = {**os.environ, "PYTHONPATH": ROOT}
        worker = subprocess.Popen(
            [sys.executable, "-m", "nexq.cli.main", "worker", "--store", url, "--namespace", "crash",
             "--with-scheduler", "--save-interval", str(args.save_interval), "--concurrency", "1",
             "--app", "tests.runtime.sample_app:app"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        acked: list[str] = []
        kill_at = random.uniform(args.seconds * 0.5, args.seconds * 0.8)

        async def run() -> None:
            async with trio.open_nursery() as n:
                n.start_soon(produce, url, args.rate, kill_at, acked)
        trio.run(run)
        store.send_signal(signal.SIGKILL)
        store.wait()
        store = start_store(args, port, d)
        try:
            missing = trio.run(count_missing, url, acked)
        finally:
            worker.terminate()
            worker.wait(30)
            store.terminate()
            store.wait(10)
    bound = 0 if args.redis_aof else args.rate * args.save_interval
    print(f"store={scheme} save_interval={args.save_interval}s rate={args.rate}/s "
          f"acknowledged={len(acked)} lost={missing} bound~{bound:.0f}")


if __name__ == "__main__":
    main()
