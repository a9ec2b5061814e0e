"""Throughput of RespStore next to redis-py on mixed GET/SET.

    python benchmarks/store_ops.py [--url redis://127.0.0.1:6379] [--seconds 3]

Without ``--url`` it starts a throw-away ``redis-server`` on a free port and
stops it afterwards. Keys carry a random prefix and are deleted at the end,
so it is safe against a shared server (it never flushes). Prints a markdown
table and a line describing the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trio

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from common import wait_port  # noqa: E402

from nexq.store import Batch, open_store  # noqa: E402
from nexq.store.resp import RespStore  # noqa: E402

NKEYS = 1000
VALUE = b"v" * 32
PIPELINE = 100
TASKS = 64


@contextmanager
def local_redis() -> Iterator[str]:
    """A redis-server of our own on a free loopback port."""
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="nexq-bench-") as d:
        proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                d,
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                os.path.join(d, "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port, proc, "redis-server")
            yield f"redis://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def keys_for(prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(NKEYS)]


async def nexq_sequential(store: RespStore, keys: list[str], seconds: float) -> int:
    ops = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for i in range(0, 100, 2):
            await store.get(keys[i])
            await store.set(keys[i + 1], VALUE)
        ops += 100
    return ops


async def nexq_concurrent(store: RespStore, keys: list[str], seconds: float) -> int:
    counts = [0] * TASKS
    stop = False

    async def worker(n: int) -> None:
        i = n * 7
        while not stop:
            await store.get(keys[i % NKEYS])
            await store.set(keys[(i + 1) % NKEYS], VALUE)
            counts[n] += 2
            i += 2

    async with trio.open_nursery() as nursery:
        for n in range(TASKS):
            nursery.start_soon(worker, n)
        await trio.sleep(seconds)
        stop = True
    return sum(counts)


async def nexq_pipelined(store: RespStore, keys: list[str], seconds: float) -> int:
    ops = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        batch = Batch()
        for i in range(0, PIPELINE, 2):
            batch.get(keys[i]).set(keys[i + 1], VALUE)
        await store.execute(batch)
        ops += PIPELINE
    return ops


def redispy_sequential(client: object, keys: list[str], seconds: float) -> int:
    get, set_ = client.get, client.set  # type: ignore[attr-defined]
    ops = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for i in range(0, 100, 2):
            get(keys[i])
            set_(keys[i + 1], VALUE)
        ops += 100
    return ops


def redispy_pipelined(client: object, keys: list[str], seconds: float) -> int:
    ops = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
        for i in range(0, PIPELINE, 2):
            pipe.get(keys[i])
            pipe.set(keys[i + 1], VALUE)
        pipe.execute()
        ops += PIPELINE
    return ops


def machine_line() -> str:
    import hiredis
    from common import machine_line as base

    return f"machine: {base()}, trio {trio.__version__}, hiredis {hiredis.__version__}"


def row(client: str, mode: str, ops: int, seconds: float, per_trip: bool = False) -> str:
    rate = ops / seconds
    note = f"{seconds / ops * 1e6:.1f} µs per round trip" if per_trip else ""
    return f"| {client} | {mode} | {rate:,.0f} | {note} |"


def run(url: str, seconds: float, rounds: int = 3) -> None:
    """Measure every mode and print the table.

    The machine's latency drifts (a VM's idle states, neighbours), so the
    modes take turns: ``rounds`` rounds of every mode, ``seconds / rounds``
    each, summed per mode. redis-py's sync calls run inside the trio loop,
    which is idle meanwhile.
    """
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    keys = keys_for(prefix)
    try:
        import redis
    except ImportError:
        redis = None  # type: ignore[assignment]
    client = (
        redis.Redis.from_url(url.replace("pogocache://", "redis://"), protocol=2)
        if redis is not None
        else None
    )
    ops = dict.fromkeys(("seq", "conc", "pipe", "py_seq", "py_pipe"), 0)
    part = seconds / rounds

    async def measure() -> None:
        async with open_store(url) as store:
            assert isinstance(store, RespStore)
            try:
                for i in range(0, NKEYS, PIPELINE):
                    b = Batch()
                    for k in keys[i : i + PIPELINE]:
                        b.set(k, VALUE)
                    await store.execute(b)
                await nexq_sequential(store, keys, 0.3)  # warm up
                if client is not None:
                    redispy_sequential(client, keys, 0.3)
                for _ in range(rounds):
                    ops["seq"] += await nexq_sequential(store, keys, part)
                    ops["conc"] += await nexq_concurrent(store, keys, part)
                    ops["pipe"] += await nexq_pipelined(store, keys, part)
                    if client is not None:
                        ops["py_seq"] += redispy_sequential(client, keys, part)
                        ops["py_pipe"] += redispy_pipelined(client, keys, part)
            finally:
                with trio.CancelScope(shield=True):
                    await store.delete(*keys)

    trio.run(measure)
    rows = [
        row("nexq RespStore", "1 task, sequential", ops["seq"], seconds, True),
        row("nexq RespStore", f"{TASKS} tasks (auto-pipelining)", ops["conc"], seconds),
        row("nexq RespStore", f"1 task, batches of {PIPELINE}", ops["pipe"], seconds),
    ]
    if client is not None:
        name = f"redis-py {redis.__version__} sync"
        rows.append(row(name, "sequential", ops["py_seq"], seconds, True))
        rows.append(row(name, f"pipeline of {PIPELINE}", ops["py_pipe"], seconds))
        client.close()
    else:
        rows.append("| redis-py | not installed | | |")
    print(
        f"GET/SET mixed 1:1, {len(VALUE)}-byte values, {NKEYS} keys, {seconds:g} s per mode "
        f"in {rounds} alternating rounds\n"
    )
    print("| client | mode | ops/s | note |")
    print("|---|---|---:|---|")
    for r in rows:
        print(r)
    print()
    print(machine_line())


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="RESP server (default: start a local redis-server)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per mode")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args(argv)
    if args.url:
        run(args.url, args.seconds, args.rounds)
    else:
        with local_redis() as url:
            out(f"server: local redis-server at {url}")
            run(url, args.seconds, args.rounds)


if __name__ == "__main__":
    main()
