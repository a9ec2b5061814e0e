"""Nexq, the same scenarios on trio: enqueue (sequential, 100 trio tasks in
flight, enqueue_many), end-to-end with a Worker inside the producer's trio
process and with 2 `nexq worker` processes, and pick-up latency for both.

On the embedded store (memory://, not durable) only the in-process
scenarios run: `nexq worker` refuses it. Each scenario has its own namespace.
On a shared server (Pogocache) the tasks the enqueue scenarios left pending
are run afterwards by an in-process worker so nothing stays queued;
finished tasks expire after NEXQ_RETENTION (set to 600 s by run.py).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import uuid
from functools import partial
from importlib.metadata import version
from typing import Any

import trio

from benchmarks.nexq_app import make_app
from nexq.runtime.worker import Worker

from .base import (
    Progress,
    Sizes,
    Workers,
    check,
    clear_latencies,
    latency_stats,
    rate,
    read_latencies,
)
from .drivers import E2E_BUDGET, ENQUEUE_BUDGET, LAT_TAIL, READY_BUDGET

CONCURRENCY = 50
PROCESSES = 2


class NexqRunner:
    def __init__(self, url: str, sizes: Sizes, progress: Progress, logdir: str, latdir: str,
                 scenarios: set[str]) -> None:
        self.url, self.sizes, self.progress = url, sizes, progress
        self.logdir, self.latdir, self.scenarios = logdir, latdir, scenarios
        self.embedded = url.startswith("memory:")
        self.prefix = "pb" + uuid.uuid4().hex[:6]
        self.leftovers: list[str] = []
        self.settings = {
            "version": f"nexq {version('nexq')}, trio {version('trio')}",
            "workers": (f"in-process Worker (concurrency {CONCURRENCY}) in the producer's trio process"
                        + ("" if self.embedded else
                           f"; and {PROCESSES} × `nexq worker --concurrency {CONCURRENCY}`")),
            "enqueue": "app.enqueue",
            "bulk": f"app.enqueue_many, batches of {sizes.batch}",
            "done": "Inspector.queue_stats: succeeded counter",
            "namespaces": f"{self.prefix}-*",
        }

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    # -- helpers ---------------------------------------------------------------------

    async def succeeded(self, app: Any) -> int:
        [stats] = await app._runtime.inspector.queue_stats(["default"])
        return int(stats["succeeded"])

    async def wait_done(self, app: Any, target: int, budget: float, what: str,
                        workers: Workers | None = None) -> None:
        end = time.monotonic() + budget
        while (d := await self.succeeded(app)) < target:
            check(end, f"{what}: {d}/{target} done")
            if workers:
                workers.check_alive()
            self.progress(what, d, target)
            await trio.sleep(0.01)

    async def bulk(self, app: Any, n: int) -> None:
        for lo in range(0, n, self.sizes.batch):
            await app.enqueue_many([("noop", i) for i in range(lo, min(lo + self.sizes.batch, n))])

    async def e2e_and_latency(self, app: Any, label: str, workers: Workers | None) -> dict[str, Any]:
        s, out = self.sizes, {}
        for i in range(s.warmup):
            await app.enqueue("noop", i)
        await self.wait_done(app, s.warmup, READY_BUDGET, f"{label}: workers starting", workers)
        if f"e2e{label}" in self.scenarios:
            self.progress(f"e2e{label}", force=True)
            try:
                base = await self.succeeded(app)
                t0 = time.perf_counter()
                await self.bulk(app, s.e2e)
                t_enq = time.perf_counter() - t0
                await self.wait_done(app, base + s.e2e, E2E_BUDGET, f"e2e{label}", workers)
                out[f"e2e{label}"] = rate(s.e2e, time.perf_counter() - t0, enqueue_seconds=t_enq)
            except Exception as exc:
                out[f"e2e{label}"] = {"error": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
        if f"latency{label}" in self.scenarios:
            self.progress(f"latency{label}", force=True)
            clear_latencies(self.latdir)
            await trio.sleep(1.0)
            total = int(s.rate * s.duration)
            start = time.time() + 0.05
            for k in range(total):
                t = start + k / s.rate
                delay = t - time.time()
                if delay > 0:
                    await trio.sleep(delay)
                await app.enqueue("mark", t)
                self.progress(f"latency{label}", k, total)
            end = time.monotonic() + LAT_TAIL
            while len(read_latencies(self.latdir)) < total and time.monotonic() < end:
                await trio.sleep(0.05)
            out[f"latency{label}"] = latency_stats(read_latencies(self.latdir), total)
        return out

    # -- scenarios -----------------------------------------------------------------------

    async def enqueue_seq(self) -> dict[str, Any]:
        async with make_app(self.url, self.ns("seq")).connect() as app:
            self.leftovers.append(self.ns("seq"))
            end = time.monotonic() + ENQUEUE_BUDGET
            t0 = time.perf_counter()
            for i in range(self.sizes.seq):
                await app.enqueue("noop", i)
                if i % 100 == 0:
                    check(end, "enqueue seq")
                    self.progress("enqueue, sequential", i, self.sizes.seq)
            return rate(self.sizes.seq, time.perf_counter() - t0)

    async def enqueue_conc(self) -> dict[str, Any]:
        s = self.sizes
        per = s.conc // s.inflight
        async with make_app(self.url, self.ns("conc")).connect() as app:
            self.leftovers.append(self.ns("conc"))

            async def producer(k: int) -> None:
                for i in range(per):
                    await app.enqueue("noop", k * per + i)

            t0 = time.perf_counter()
            with trio.fail_after(ENQUEUE_BUDGET):
                async with trio.open_nursery() as nursery:
                    for k in range(s.inflight):
                        nursery.start_soon(producer, k)
            return rate(per * s.inflight, time.perf_counter() - t0, mode=f"{s.inflight} trio tasks")

    async def enqueue_bulk(self) -> dict[str, Any]:
        async with make_app(self.url, self.ns("bulk")).connect() as app:
            self.leftovers.append(self.ns("bulk"))
            t0 = time.perf_counter()
            with trio.fail_after(ENQUEUE_BUDGET):
                await self.bulk(app, self.sizes.bulk)
            return rate(self.sizes.bulk, time.perf_counter() - t0)

    async def inproc(self) -> dict[str, Any]:
        async with make_app(self.url, self.ns("inproc")).connect() as app:
            w = Worker(app._runtime, app, concurrency=CONCURRENCY)
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(w.run, grace=2.0))
                try:
                    return await self.e2e_and_latency(app, "_inproc", None)
                finally:
                    w.stop()

    async def processes(self) -> dict[str, Any]:
        ns = self.ns("procs")
        workers = Workers(self.logdir)
        exe = os.path.join(os.path.dirname(sys.executable), "nexq")
        try:
            for _ in range(PROCESSES):
                workers.start([exe, "worker", "--store", self.url, "--namespace", ns, "--app",
                               "benchmarks.nexq_app:app", "--concurrency", str(CONCURRENCY),
                               "--shutdown-grace", "1", "--log-level", "warning"], "nexq")
            async with make_app(self.url, ns).connect() as app:
                return await self.e2e_and_latency(app, "", workers)
        finally:
            workers.stop()

    async def drain(self, ns: str) -> None:
        """Run what an enqueue-only scenario left pending (shared servers only)."""
        async with make_app(self.url, ns).connect() as app:
            w = Worker(app._runtime, app, concurrency=CONCURRENCY)
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(w.run, grace=2.0))
                with trio.move_on_after(60):
                    while True:
                        [st] = await app._runtime.inspector.queue_stats(["default"])
                        if st["pending"] == 0:
                            break
                        self.progress(f"draining {ns}", st["pending"])
                        await trio.sleep(0.1)
                w.stop()

    async def run(self, drain: bool, results: dict[str, Any]) -> dict[str, Any]:
        """Fills ``results`` as it goes (kept if the run is stopped half way)."""
        steps = [("enqueue_seq", self.enqueue_seq), ("enqueue_conc", self.enqueue_conc),
                 ("enqueue_bulk", self.enqueue_bulk)]
        for name, fn in steps:
            if name in self.scenarios:
                self.progress(name, force=True)
                try:
                    results[name] = await fn()
                except Exception as exc:
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                    traceback.print_exc()
        groups = [({"e2e_inproc", "latency_inproc"}, self.inproc)]
        if not self.embedded:
            groups.append(({"e2e", "latency"}, self.processes))
        for names, fn in groups:
            if names & self.scenarios:
                try:
                    results.update(await fn())
                except Exception as exc:
                    for name in names & self.scenarios:
                        results.setdefault(name, {"error": f"{type(exc).__name__}: {exc}"})
                    traceback.print_exc()
        if drain:
            for ns in self.leftovers:
                try:
                    await self.drain(ns)
                except Exception:
                    traceback.print_exc()
        return results
