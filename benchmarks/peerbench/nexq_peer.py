"""Nexq, measured the way a user meets it, then its in-process engine figures.

Public API rows (the drivers every peer runs; needs a shared store: the
clients refuse memory://):

- ``enqueue_seq``: ``nexq.Client.enqueue`` from a plain Python loop;
- ``enqueue_conc``: ``nexq.AsyncClient.enqueue`` from 100 asyncio tasks;
- ``enqueue_conc_threads``: ``Client.enqueue`` from 100 threads (as RQ,
  Celery, Dramatiq and Huey are driven);
- ``enqueue_bulk``: ``Client.enqueue_many``, batches of ``sizes.batch``;
- ``e2e``, ``latency``: ``nexq worker --processes 2 --app
  benchmarks.peerbench.nexq_jobs:app`` (a supervisor with 2 children), fed
  by ``Client``; the jobs record themselves as every peer's do.

Engine figures (trio, in the producer's process): ``app.enqueue``
sequential (``enqueue_seq_trio``) and from 100 trio tasks
(``enqueue_conc_trio``), ``app.enqueue_many`` (``enqueue_bulk_trio``), and a
``Worker`` inside the producer's trio process (``e2e_inproc``,
``latency_inproc``; no-op ``bare`` jobs counted by the succeeded counter).

Every scenario has its own namespace. On a shared server (``--drain``) the
tasks the enqueue scenarios left pending are run afterwards by an
in-process worker; finished tasks expire after NEXQ_RETENTION (600 s, set by
run.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from functools import partial
from importlib.metadata import version
from typing import Any

import trio

from nexq import AsyncClient, Client, Nexq
from nexq.runtime.worker import Worker

from .base import (
    ENV_DONE_KEY,
    Counter,
    Progress,
    Sizes,
    Workers,
    check,
    clear_latencies,
    latency_stats,
    open_loop,
    rate,
    read_latencies,
)
from .cpu import CpuMeter
from .drivers import E2E_BUDGET, ENQUEUE_BUDGET, LAT_TAIL, READY_BUDGET, run_async, run_sync
from .nexq_jobs import make_app

CONCURRENCY = 50
PROCESSES = 2
APP = "benchmarks.peerbench.nexq_jobs:app"
JOB = ("a plain function (in a worker thread)" if os.environ.get("PEERBENCH_NEXQ_JOB") == "thread"
       else "an async def")


class Namespaces:
    """A fresh namespace per scenario (the store may be shared: never flushed)."""

    def __init__(self) -> None:
        self.prefix = "pb" + uuid.uuid4().hex[:6]
        self.used: list[str] = []

    def new(self, name: str) -> str:
        ns = f"{self.prefix}-{name}{len(self.used)}"
        self.used.append(ns)
        return ns


class ClientPeer:
    """Nexq through ``nexq.Client``, for drivers.run_sync."""

    name = "nexq"
    kind = "sync"

    def __init__(self, url: str, spaces: Namespaces) -> None:
        self.url, self.spaces = url, spaces
        self.client: Client | None = None

    def reset(self) -> None:
        self.close()
        self.client = Client(self.url, namespace=self.spaces.new("client"))

    def enqueue(self, i: int) -> None:
        self.client.enqueue("noop", i)

    def enqueue_batch(self, items: Iterable[int]) -> None:
        self.client.enqueue_many([("noop", i) for i in items])

    def mark(self, t: float) -> None:
        self.client.enqueue("mark", t)

    def start_workers(self, w: Workers) -> None:
        exe = os.path.join(os.path.dirname(sys.executable), "nexq")
        w.start([exe, "worker", "--processes", str(PROCESSES), "--store", self.url,
                 "--namespace", self.client.namespace, "--app", APP, "--concurrency", str(CONCURRENCY),
                 "--shutdown-grace", "1", "--log-level", "warning"], "nexq")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class AsyncClientPeer:
    """Nexq through ``nexq.AsyncClient``, for drivers.run_async (enqueue scenarios only)."""

    name = "nexq"
    kind = "async"

    def __init__(self, url: str, spaces: Namespaces) -> None:
        self.url, self.spaces = url, spaces
        self.client: AsyncClient | None = None

    async def reset(self) -> None:
        await self.close()
        self.client = AsyncClient(self.url, namespace=self.spaces.new("aio"))

    async def enqueue(self, i: int) -> None:
        await self.client.enqueue("noop", i)

    async def enqueue_batch(self, items: Iterable[int]) -> None:
        await self.client.enqueue_many([("noop", i) for i in items])

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None


def settings(url: str, spaces: Namespaces, sizes: Sizes) -> dict[str, Any]:
    embedded = url.startswith("memory:")
    return {
        "version": f"nexq {version('nexq')}, trio {version('trio')}",
        "workers": (f"in-process Worker (concurrency {CONCURRENCY}) in the producer's trio process"
                    if embedded else
                    f"`nexq worker --processes {PROCESSES} --concurrency {CONCURRENCY}` (a supervisor and "
                    f"{PROCESSES} children; the job: {JOB}); engine figures: an in-process Worker "
                    f"(concurrency {CONCURRENCY})"),
        "enqueue": "app.enqueue (trio)" if embedded else "nexq.Client.enqueue; engine: app.enqueue (trio)",
        "bulk": (f"app.enqueue_many, batches of {sizes.batch}" if embedded else
                 f"nexq.Client.enqueue_many, batches of {sizes.batch}; engine: app.enqueue_many"),
        "in_flight": "100 trio tasks" if embedded else "nexq.AsyncClient, 100 asyncio tasks; engine: 100 trio tasks",
        "namespaces": f"{spaces.prefix}-*",
    }


def run_nexq(url: str, sizes: Sizes, progress: Progress, logdir: str, latdir: str, scenarios: set[str],
             drain: bool, out: dict[str, Any]) -> None:
    """Every Nexq scenario in ``scenarios``; fills ``out["settings"]`` and
    ``out["results"]`` as it goes (kept if the run is stopped half way)."""
    spaces = Namespaces()
    out["settings"] = settings(url, spaces, sizes)
    results = out["results"]
    os.environ[ENV_DONE_KEY] = f"{spaces.prefix}-done"  # read by the jobs, here and in the workers
    try:
        if not url.startswith("memory:"):
            public(url, spaces, sizes, progress, logdir, latdir, scenarios, results)
        trio.run(Engine(url, spaces, sizes, progress, latdir, scenarios).run, results)
        if drain:
            trio.run(drain_all, url, spaces, progress)
    finally:
        if not url.startswith("memory:"):
            counter = Counter(url, os.environ[ENV_DONE_KEY])
            counter.delete()
            counter.close()


def public(url: str, spaces: Namespaces, sizes: Sizes, progress: Progress, logdir: str, latdir: str,
           scenarios: set[str], results: dict[str, Any]) -> None:
    sync = ClientPeer(url, spaces)
    try:
        run_sync(sync, sizes, progress, logdir, latdir, scenarios & {"enqueue_seq", "enqueue_bulk", "e2e", "latency"},
                 results)
        if "enqueue_conc_threads" in scenarios:
            threads: dict[str, Any] = {}
            run_sync(sync, sizes, progress, logdir, latdir, {"enqueue_conc"}, threads)
            results["enqueue_conc_threads"] = threads["enqueue_conc"]
    finally:
        sync.close()
    if "enqueue_conc" in scenarios:
        aio = AsyncClientPeer(url, spaces)

        async def go() -> None:
            try:
                await run_async(aio, sizes, progress, logdir, latdir, {"enqueue_conc"}, results)
            finally:
                await aio.close()

        asyncio.run(go())


class Engine:
    """The trio figures: app.enqueue / enqueue_many and an in-process Worker."""

    def __init__(self, url: str, spaces: Namespaces, sizes: Sizes, progress: Progress, latdir: str,
                 scenarios: set[str]) -> None:
        self.url, self.spaces, self.sizes, self.progress = url, spaces, sizes, progress
        self.latdir, self.scenarios = latdir, scenarios
        self.meter = CpuMeter(url)

    async def succeeded(self, app: Nexq) -> int:
        [stats] = await app.broker.inspector().queue_stats(["default"])
        return int(stats["succeeded"])

    async def wait_done(self, app: Nexq, target: int, budget: float, what: str) -> None:
        end = time.monotonic() + budget
        while (d := await self.succeeded(app)) < target:
            check(end, f"{what}: {d}/{target} done")
            self.progress(what, d, target)
            await trio.sleep(0.01)

    async def bulk(self, app: Nexq, n: int) -> None:
        for lo in range(0, n, self.sizes.batch):
            await app.enqueue_many([("bare", i) for i in range(lo, min(lo + self.sizes.batch, n))])

    async def timed(self, n: int, body: Callable[[Nexq], Any], **extra: Any) -> dict[str, Any]:
        async with make_app(self.url, self.spaces.new("trio")).connect() as app:
            c0, t0 = self.meter.snapshot(), time.perf_counter()
            with trio.fail_after(ENQUEUE_BUDGET):
                await body(app)
            return rate(n, time.perf_counter() - t0, cpu=self.meter.since(c0, n), **extra)

    async def enqueue_seq_trio(self) -> dict[str, Any]:
        async def body(app: Nexq) -> None:
            for i in range(self.sizes.seq):
                await app.enqueue("bare", i)
                if i % 100 == 0:
                    self.progress("app.enqueue, sequential", i, self.sizes.seq)

        return await self.timed(self.sizes.seq, body)

    async def enqueue_conc_trio(self) -> dict[str, Any]:
        s = self.sizes
        per = s.conc // s.inflight

        async def producer(app: Nexq, k: int) -> None:
            for i in range(per):
                await app.enqueue("bare", k * per + i)

        async def body(app: Nexq) -> None:
            async with trio.open_nursery() as nursery:
                for k in range(s.inflight):
                    nursery.start_soon(producer, app, k)

        return await self.timed(per * s.inflight, body, mode=f"{s.inflight} trio tasks")

    async def enqueue_bulk_trio(self) -> dict[str, Any]:
        return await self.timed(self.sizes.bulk, lambda app: self.bulk(app, self.sizes.bulk))

    async def inproc(self) -> dict[str, Any]:
        s, out = self.sizes, {}
        async with make_app(self.url, self.spaces.new("inproc")).connect() as app:
            w = Worker(app._runtime, app, concurrency=CONCURRENCY)
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(w.run, grace=2.0))
                try:
                    for i in range(s.warmup):
                        await app.enqueue("bare", i)
                    await self.wait_done(app, s.warmup, READY_BUDGET, "in-process worker starting")
                    if "e2e_inproc" in self.scenarios:
                        out["e2e_inproc"] = await self.e2e(app)
                    if "latency_inproc" in self.scenarios:
                        out["latency_inproc"] = await self.latency(app)
                finally:
                    w.stop()
        return out

    async def e2e(self, app: Nexq) -> dict[str, Any]:
        self.progress("e2e_inproc", force=True)
        n = self.sizes.e2e
        base = await self.succeeded(app)
        c0, t0 = self.meter.snapshot(), time.perf_counter()
        await self.bulk(app, n)
        t_enq = time.perf_counter() - t0
        await self.wait_done(app, base + n, E2E_BUDGET, "e2e_inproc")
        return rate(n, time.perf_counter() - t0, enqueue_seconds=t_enq, cpu=self.meter.since(c0, n))

    async def latency(self, app: Nexq) -> dict[str, Any]:
        s = self.sizes
        self.progress("latency_inproc", force=True)
        clear_latencies(self.latdir)
        await trio.sleep(1.0)  # the worker idle
        for k, total, delay in open_loop(s):
            if delay > 0:
                await trio.sleep(delay)
            await app.enqueue("mark", time.time())
            self.progress("latency_inproc", k, total)
        end = time.monotonic() + LAT_TAIL
        while len(read_latencies(self.latdir)) < total and time.monotonic() < end:
            await trio.sleep(0.05)
        return latency_stats(read_latencies(self.latdir), total)

    async def run(self, results: dict[str, Any]) -> None:
        for name in ("enqueue_seq_trio", "enqueue_conc_trio", "enqueue_bulk_trio"):
            if name in self.scenarios:
                self.progress(name, force=True)
                try:
                    results[name] = await getattr(self, name)()
                except Exception as exc:
                    results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                    traceback.print_exc()
        if {"e2e_inproc", "latency_inproc"} & self.scenarios:
            try:
                results.update(await self.inproc())
            except Exception as exc:
                for name in {"e2e_inproc", "latency_inproc"} & self.scenarios:
                    results.setdefault(name, {"error": f"{type(exc).__name__}: {exc}"})
                traceback.print_exc()


async def drain_all(url: str, spaces: Namespaces, progress: Progress) -> None:
    """Run what the enqueue scenarios left pending (shared servers only)."""
    for ns in spaces.used:
        try:
            async with make_app(url, ns).connect() as app:
                w = Worker(app._runtime, app, concurrency=CONCURRENCY)
                async with trio.open_nursery() as nursery:
                    await nursery.start(partial(w.run, grace=2.0))
                    with trio.move_on_after(60):
                        while True:
                            [st] = await app.broker.inspector().queue_stats(["default"])
                            if st["pending"] == 0:
                                break
                            progress(f"draining {ns}", st["pending"])
                            await trio.sleep(0.1)
                    w.stop()
        except Exception:
            traceback.print_exc()
