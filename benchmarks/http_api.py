"""HTTP API benchmark: enqueue throughput and latency of ``POST /api/tasks``.

Starts ``serve_api`` in a child process (embedded store by default, or
``--store URL``) so server and load generator do not share one trio loop or
core, then keeps ``--concurrency`` requests in flight from an httpx client
for ``--seconds`` and prints a markdown table::

    .venv/bin/python benchmarks/http_api.py --seconds 10 --concurrency 32
    .venv/bin/python benchmarks/http_api.py --store redis://127.0.0.1:6379

Only loopback addresses are used. The numbers include the client's own
cost (httpx on one core), so they are a floor for the server.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


async def _serve(store_url: str, namespace: str) -> None:
    """Child process: serve the API and print the port on stdout."""
    from nexq.api import serve_api
    from nexq.config import Settings
    from nexq.runtime.runtime import Runtime
    from nexq.store import open_store

    async with open_store(store_url) as store:
        rt = Runtime.build(Settings(namespace=namespace, store=store_url), store)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_api, rt, "127.0.0.1", 0)
            print(port, flush=True)
            await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes stdin
            nursery.cancel_scope.cancel()


async def _drive(
    port: int, seconds: float, concurrency: int, payload_bytes: int, healthz: bool = False
) -> tuple[list[float], int]:
    body = {"type": "bench.noop", "payload": {"pad": "x" * payload_bytes}}
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as http:
        for _ in range(concurrency):  # warm the pool
            await http.get("/healthz")
        deadline = trio.current_time() + seconds

        async def worker() -> None:
            nonlocal errors
            while trio.current_time() < deadline:
                t0 = time.perf_counter()
                if healthz:  # the framework's floor: one store ping, no body
                    resp = await http.get("/healthz")
                else:
                    resp = await http.post("/api/tasks", json=body)
                latencies.append(time.perf_counter() - t0)
                errors += resp.status_code != (200 if healthz else 201)

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
    return latencies, errors


def _cpu_seconds(pid: int) -> float:
    """User+system CPU time of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--payload-bytes", type=int, default=100)
    ap.add_argument("--store", default=None, help="store URL (default: a fresh embedded store)")
    ap.add_argument("--healthz", action="store_true", help="drive GET /healthz instead (baseline)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--namespace", default=f"bench{os.getpid()}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        trio.run(_serve, args.store, args.namespace)
        return
    with tempfile.TemporaryDirectory(prefix="nexq-bench-") as tmp:
        store_url = args.store or f"memory://{tmp}"
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--store", store_url, "--namespace", args.namespace],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert child.stdout is not None and child.stdin is not None
            port = int(child.stdout.readline())
            server_cpu0 = _cpu_seconds(child.pid)
            t0, client_cpu0 = time.perf_counter(), time.process_time()
            latencies, errors = trio.run(_drive, port, args.seconds, args.concurrency,
                                         args.payload_bytes, args.healthz)
            elapsed = time.perf_counter() - t0
            client_cpu = time.process_time() - client_cpu0
            server_cpu = _cpu_seconds(child.pid) - server_cpu0
        finally:
            if child.stdin:
                child.stdin.close()
            child.wait(30)
    lat = sorted(latencies)
    command = "python benchmarks/http_api.py " + shlex.join(sys.argv[1:])
    print(f"`{command}`  ({platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} cores, store {'embedded' if not args.store else args.store.split('://')[0]})\n")
    print("| endpoint | requests | errors | seconds | req/s | p50 ms | p90 ms | p99 ms | max ms "
          "| server CPU s | client CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    endpoint = "GET /healthz" if args.healthz else "POST /api/tasks"
    print(f"| {endpoint} | {len(lat)} | {errors} | {elapsed:.1f} | {len(lat) / elapsed:,.0f} | "
          f"{statistics.median(lat) * 1000:.2f} | {_pct(lat, 0.90) * 1000:.2f} | "
          f"{_pct(lat, 0.99) * 1000:.2f} | {lat[-1] * 1000:.2f} | {server_cpu:.1f} | {client_cpu:.1f} |")


if __name__ == "__main__":
    main()
