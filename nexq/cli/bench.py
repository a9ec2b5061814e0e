"""``nexq bench``: measure your own deployment's store from this machine.

Enqueue (sequential, 100 in flight, bulk), end-to-end no-op processing with
an in-process worker, and pick-up latency (enqueue -> handler start) at an
open-loop rate. Uses its own namespace and leaves only expiring keys behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import trio

from ..app import Context, Nexq
from ..config import Settings
from ..runtime.runtime import Runtime
from ..runtime.worker import Worker
from ..store import open_store


def _app(starts: dict[str, float]) -> Nexq:
    app = Nexq()

    @app.task("bench.noop", max_retries=0)
    async def noop(payload: Any) -> None:
        return None

    @app.task("bench.stamp", max_retries=0)
    async def stamp(ctx: Context, payload: Any) -> None:
        starts[ctx.id] = time.time()

    return app


async def _timed(fn: Callable[[], Any], count: int) -> float:
    t0 = time.perf_counter()
    await fn()
    return count / (time.perf_counter() - t0)


async def send_open_loop(app: Nexq, type: str, rate: float, count: int) -> dict[str, float]:
    """Enqueue ``count`` tasks of ``type`` at ``rate``/s on a fixed schedule
    (open loop: a slow enqueue does not delay the next); task id -> send time."""
    sent: dict[str, float] = {}
    t0 = time.time()
    for i in range(count):
        await trio.sleep(max(0.0, t0 + i / rate - time.time()))
        s = time.time()
        sent[(await app.enqueue(type, None)).id] = s
    return sent


async def pickup_latency(app: Nexq, starts: dict[str, float], rate: float, count: int) -> list[float]:
    """Milliseconds from enqueue to handler start for ``count`` tasks sent at ``rate``/s."""
    sent = await send_open_loop(app, "bench.stamp", rate, count)
    with trio.move_on_after(10):
        while len(starts) < count:
            await trio.sleep(0.05)
    return sorted((starts[k] - v) * 1000 for k, v in sent.items() if k in starts)


async def run_bench(url: str, tasks: int, options: dict[str, Any], emit: Callable[[str], Any] = print) -> None:
    ns = f"nexq-bench-{os.getpid()}"
    starts: dict[str, float] = {}
    app = _app(starts)
    async with open_store(url, **options) as store:
        settings = Settings(namespace=ns, retention=600)
        rt = Runtime.build(settings, store)
        app.bind(rt)
        rows: list[tuple[str, str]] = []

        async def sequential() -> None:
            for _ in range(tasks // 10):
                await app.enqueue("bench.noop")

        async def in_flight() -> None:
            async def one(k: int) -> None:
                for _ in range(tasks // 100):
                    await app.enqueue("bench.noop")
            async with trio.open_nursery() as n:
                for k in range(100):
                    n.start_soon(one, k)

        async def bulk() -> None:
            for _ in range(0, tasks, 1000):
                await app.enqueue_many([("bench.noop", None)] * 1000)

        emit(f"nexq bench: {store.kind} at {url.split('@')[-1]}, {tasks} tasks, namespace {ns}")
        rows.append(("enqueue, sequential", f"{await _timed(sequential, tasks // 10):,.0f} tasks/s"))
        rows.append(("enqueue, 100 in flight", f"{await _timed(in_flight, tasks // 100 * 100):,.0f} tasks/s"))
        rows.append(("enqueue_many, batches of 1000", f"{await _timed(bulk, tasks // 1000 * 1000):,.0f} tasks/s"))
        backlog = tasks // 10 + tasks // 100 * 100 + tasks // 1000 * 1000
        worker = Worker(rt, app, concurrency=100)
        async with trio.open_nursery() as n:
            t0 = time.perf_counter()
            await n.start(worker.run)
            with trio.move_on_after(300):
                while worker.processed + worker.failed < backlog:
                    await trio.sleep(0.05)
            rows.append(("process no-op tasks, in-process worker",
                         f"{(worker.processed + worker.failed) / (time.perf_counter() - t0):,.0f} tasks/s"))
            lat = await pickup_latency(app, starts, 200, 1000)
            if lat:
                rows.append(("pick-up latency at 200/s, p50 / p99",
                             f"{lat[len(lat) // 2]:.2f} / {lat[int(len(lat) * 0.99)]:.2f} ms"))
            n.cancel_scope.cancel()
        app.bind(None)
    emit("\n| measurement | result |\n|---|---:|")
    for name, value in rows:
        emit(f"| {name} | {value} |")
