"""The scenarios, once for blocking clients (RQ, Celery, Dramatiq, Huey) and
once for asyncio clients (arq, SAQ). Nexq's trio version is in nexq_peer.py.

A peer class provides:

    name, settings (dict shown in the report)
    reset()              empty the server (no worker is running then)
    enqueue(i)           one no-op task
    enqueue_batch(items) the library's bulk path (or its best loop)
    mark(t)              one task whose handler calls base.record_start(t)
    start_workers(w)     start its worker processes through base.Workers
    close()

(async def for the asyncio ones, except start_workers and close). Every
no-op job does one blocking round trip to record itself (base.record_done:
INCR of a counter on the store server); finished jobs are counted by
reading that counter, the same way for every queue. Every wait has a
deadline; workers are stopped in a finally. Every throughput figure carries
the CPU seconds of the producer, the worker processes and the store server
(cpu.CpuMeter).
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .base import (
    Counter,
    Deadline,
    Progress,
    Sizes,
    Workers,
    check,
    clear_latencies,
    done_key,
    latency_stats,
    open_loop,
    rate,
    read_latencies,
)
from .cpu import CpuMeter

ENQUEUE_BUDGET = 90.0   # seconds any enqueue-only scenario may take
E2E_BUDGET = 150.0      # seconds for all e2e tasks to finish
READY_BUDGET = 60.0     # seconds for workers to finish the warm-up tasks
LAT_TAIL = 15.0         # seconds after the last mark for all of them to start
SETTLE = 1.0            # seconds idle after the warm-up: every worker process up and polling


def _guard(results: dict[str, Any], name: str, fn: Callable[[], Any], progress: Progress) -> None:
    try:
        results[name] = fn()
    except Exception as exc:  # one scenario failing must not stop the others
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        progress.done(f"{name} FAILED: {exc}")
        traceback.print_exc()


def run_sync(peer: Any, sizes: Sizes, progress: Progress, logdir: str, latdir: str,
             scenarios: set[str], results: dict[str, Any]) -> dict[str, Any]:
    """Fills ``results`` as it goes (kept if the run is stopped half way)."""
    meter = CpuMeter(peer.url)

    def seq() -> dict[str, Any]:
        peer.reset()
        end = time.monotonic() + ENQUEUE_BUDGET
        c0, t0 = meter.snapshot(), time.perf_counter()
        for i in range(sizes.seq):
            peer.enqueue(i)
            if i % 100 == 0:
                check(end, "enqueue seq")
                progress("enqueue, sequential", i, sizes.seq)
        return rate(sizes.seq, time.perf_counter() - t0, cpu=meter.since(c0, sizes.seq))

    def conc() -> dict[str, Any]:
        peer.reset()
        end = time.monotonic() + ENQUEUE_BUDGET
        per = sizes.conc // sizes.inflight

        def producer(k: int) -> None:
            for i in range(per):
                if time.monotonic() > end:
                    raise Deadline("enqueue conc: deadline passed")
                peer.enqueue(k * per + i)

        c0, t0 = meter.snapshot(), time.perf_counter()
        with ThreadPoolExecutor(sizes.inflight) as pool:
            for f in [pool.submit(producer, k) for k in range(sizes.inflight)]:
                f.result(timeout=ENQUEUE_BUDGET + 5)
        n = per * sizes.inflight
        return rate(n, time.perf_counter() - t0, mode=f"{sizes.inflight} threads", cpu=meter.since(c0, n))

    def bulk() -> dict[str, Any]:
        peer.reset()
        end = time.monotonic() + ENQUEUE_BUDGET
        c0, t0 = meter.snapshot(), time.perf_counter()
        for lo in range(0, sizes.bulk, sizes.batch):
            check(end, "bulk enqueue")
            peer.enqueue_batch(range(lo, min(lo + sizes.batch, sizes.bulk)))
            progress("bulk enqueue", lo + sizes.batch, sizes.bulk)
        return rate(sizes.bulk, time.perf_counter() - t0, cpu=meter.since(c0, sizes.bulk))

    for name, fn in (("enqueue_seq", seq), ("enqueue_conc", conc), ("enqueue_bulk", bulk)):
        if name in scenarios:
            progress(name, force=True)
            _guard(results, name, fn, progress)
    if not scenarios & {"e2e", "latency"}:
        return results

    workers = Workers(logdir)
    meter = CpuMeter(peer.url, workers.pids)
    counter = Counter(peer.url, done_key())
    try:
        peer.reset()
        peer.start_workers(workers)

        def wait_done(target: int, budget: float, what: str) -> None:
            end = time.monotonic() + budget
            while (d := counter.count()) < target:
                check(end, f"{what}: {d}/{target} done")
                workers.check_alive()
                progress(what, d, target)
                time.sleep(0.01)

        # Warm-up: proves the workers are up and connected before timing.
        for i in range(sizes.warmup):
            peer.enqueue(i)
        wait_done(sizes.warmup, READY_BUDGET, "workers starting")
        time.sleep(SETTLE)
        progress.done("workers ready")

        def e2e() -> dict[str, Any]:
            base = counter.count()
            c0, t0 = meter.snapshot(), time.perf_counter()
            for lo in range(0, sizes.e2e, sizes.batch):
                peer.enqueue_batch(range(lo, min(lo + sizes.batch, sizes.e2e)))
            t_enq = time.perf_counter() - t0
            wait_done(base + sizes.e2e, E2E_BUDGET, "e2e processing")
            return rate(sizes.e2e, time.perf_counter() - t0, enqueue_seconds=t_enq, cpu=meter.since(c0, sizes.e2e))

        def latency() -> dict[str, Any]:
            clear_latencies(latdir)
            time.sleep(1.0)  # workers idle
            for k, total, delay in open_loop(sizes):
                if delay > 0:
                    time.sleep(delay)
                peer.mark(time.time())  # timed from the producer's call
                progress("pick-up latency", k, total)
            end = time.monotonic() + LAT_TAIL
            while len(read_latencies(latdir)) < total and time.monotonic() < end:
                time.sleep(0.05)
            return latency_stats(read_latencies(latdir), total)

        for name, fn in (("e2e", e2e), ("latency", latency)):
            if name in scenarios:
                progress(name, force=True)
                _guard(results, name, fn, progress)
    except Exception as exc:  # the workers did not start: both scenarios failed
        _fail_rest(results, scenarios, exc)
    finally:
        workers.stop()
        counter.close()
    return results


async def _aguard(results: dict[str, Any], name: str, fn: Any, progress: Progress) -> None:
    try:
        results[name] = await fn()
    except Exception as exc:
        results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        progress.done(f"{name} FAILED: {exc}")
        traceback.print_exc()


async def run_async(peer: Any, sizes: Sizes, progress: Progress, logdir: str, latdir: str,
                    scenarios: set[str], results: dict[str, Any]) -> dict[str, Any]:
    meter = CpuMeter(peer.url)

    async def seq() -> dict[str, Any]:
        await peer.reset()
        end = time.monotonic() + ENQUEUE_BUDGET
        c0, t0 = meter.snapshot(), time.perf_counter()
        for i in range(sizes.seq):
            await peer.enqueue(i)
            if i % 100 == 0:
                check(end, "enqueue seq")
                progress("enqueue, sequential", i, sizes.seq)
        return rate(sizes.seq, time.perf_counter() - t0, cpu=meter.since(c0, sizes.seq))

    async def conc() -> dict[str, Any]:
        await peer.reset()
        per = sizes.conc // sizes.inflight

        async def producer(k: int) -> None:
            for i in range(per):
                await peer.enqueue(k * per + i)

        c0, t0 = meter.snapshot(), time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(producer(k) for k in range(sizes.inflight))), ENQUEUE_BUDGET)
        n = per * sizes.inflight
        return rate(n, time.perf_counter() - t0, mode=f"{sizes.inflight} asyncio tasks", cpu=meter.since(c0, n))

    async def bulk() -> dict[str, Any]:
        await peer.reset()
        end = time.monotonic() + ENQUEUE_BUDGET
        c0, t0 = meter.snapshot(), time.perf_counter()
        for lo in range(0, sizes.bulk, sizes.batch):
            check(end, "bulk enqueue")
            await peer.enqueue_batch(range(lo, min(lo + sizes.batch, sizes.bulk)))
            progress("bulk enqueue", lo + sizes.batch, sizes.bulk)
        return rate(sizes.bulk, time.perf_counter() - t0, cpu=meter.since(c0, sizes.bulk))

    for name, fn in (("enqueue_seq", seq), ("enqueue_conc", conc), ("enqueue_bulk", bulk)):
        if name in scenarios:
            progress(name, force=True)
            await _aguard(results, name, fn, progress)
    if not scenarios & {"e2e", "latency"}:
        return results

    workers = Workers(logdir)
    meter = CpuMeter(peer.url, workers.pids)
    counter = Counter(peer.url, done_key())
    try:
        await peer.reset()
        peer.start_workers(workers)

        async def wait_done(target: int, budget: float, what: str) -> None:
            end = time.monotonic() + budget
            while (d := counter.count()) < target:
                check(end, f"{what}: {d}/{target} done")
                workers.check_alive()
                progress(what, d, target)
                await asyncio.sleep(0.01)

        for i in range(sizes.warmup):
            await peer.enqueue(i)
        await wait_done(sizes.warmup, READY_BUDGET, "workers starting")
        await asyncio.sleep(SETTLE)
        progress.done("workers ready")

        async def e2e() -> dict[str, Any]:
            base = counter.count()
            c0, t0 = meter.snapshot(), time.perf_counter()
            for lo in range(0, sizes.e2e, sizes.batch):
                await peer.enqueue_batch(range(lo, min(lo + sizes.batch, sizes.e2e)))
            t_enq = time.perf_counter() - t0
            await wait_done(base + sizes.e2e, E2E_BUDGET, "e2e processing")
            return rate(sizes.e2e, time.perf_counter() - t0, enqueue_seconds=t_enq, cpu=meter.since(c0, sizes.e2e))

        async def latency() -> dict[str, Any]:
            clear_latencies(latdir)
            await asyncio.sleep(1.0)
            for k, total, delay in open_loop(sizes):
                if delay > 0:
                    await asyncio.sleep(delay)
                await peer.mark(time.time())  # timed from the producer's call
                progress("pick-up latency", k, total)
            end = time.monotonic() + LAT_TAIL
            while len(read_latencies(latdir)) < total and time.monotonic() < end:
                await asyncio.sleep(0.05)
            return latency_stats(read_latencies(latdir), total)

        for name, fn in (("e2e", e2e), ("latency", latency)):
            if name in scenarios:
                progress(name, force=True)
                await _aguard(results, name, fn, progress)
    except Exception as exc:  # the workers did not start: both scenarios failed
        _fail_rest(results, scenarios, exc)
    finally:
        workers.stop()
        counter.close()
    return results


def _fail_rest(results: dict[str, Any], scenarios: Any, exc: Exception) -> None:
    """Record ``exc`` for the worker scenarios that have no result yet."""
    for name in ("e2e", "latency"):
        if name in scenarios:
            results.setdefault(name, {"error": f"{type(exc).__name__}: {exc}"})
    traceback.print_exc()
