"""The worker in-process: handlers, failures, timeouts, cancel, drain."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from nexq.app import Nexq, TaskFailed
from nexq.config import Settings
from nexq.errors import Retry
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.worker import Worker
from nexq.store import Batch, Store
from nexq.task import Status
from tests.wrapped_store import WrappedStore


@pytest.fixture
async def rt(store: Store, prefix: str) -> AsyncIterator[Runtime]:
    settings = Settings(namespace=prefix.rstrip(":"), lease=2.0)
    yield Runtime.build(settings, store)


async def start(nursery: trio.Nursery, rt: Runtime, app: Nexq, **kw: Any) -> Worker:
    app.bind(rt)
    kw.setdefault("concurrency", 4)
    w = Worker(rt, app, **kw)
    await nursery.start(lambda task_status: w.run(grace=kw.pop("grace", 5.0), task_status=task_status))
    await nursery.start(Scheduler(rt.broker).run)
    return w


async def test_async_and_thread_handlers_run_and_record_results(rt: Runtime) -> None:
    app = Nexq()
    threads: list[str] = []

    @app.task("add")
    async def add(payload: Any) -> int:
        return payload["a"] + payload["b"]

    @app.task("blocking")
    def blocking(ctx: Any, payload: Any) -> str:
        threads.append(threading.current_thread().name)
        ctx.progress_sync(0.5, "half")
        return f"ran {payload}"

    async with trio.open_nursery() as n:
        await start(n, rt, app)
        h1 = await app.enqueue("add", {"a": 2, "b": 3})
        h2 = await app.enqueue("blocking", "x")
        assert await h1.result(timeout=10) == 5
        assert await h2.result(timeout=10) == "ran x"
        assert threads and threads[0] != threading.main_thread().name
        assert (await h2.info()).progress["message"] == "half"
        n.cancel_scope.cancel()


async def test_handler_error_retries_with_traceback_then_dead(rt: Runtime) -> None:
    app = Nexq()
    calls: list[int] = []

    @app.task("flaky", max_retries=2)
    async def flaky(ctx: Any, payload: Any) -> None:
        calls.append(ctx.attempt)
        raise Retry(delay=0.05) if ctx.attempt < 3 else ValueError("still broken")

    async with trio.open_nursery() as n:
        await start(n, rt, app)
        h = await app.enqueue("flaky")
        with pytest.raises(TaskFailed, match="ValueError: still broken"):
            await h.result(timeout=15)
        t = await h.info()
        assert t.status is Status.DEAD and calls == [1, 2, 3]
        assert "ValueError" in (t.attempts[-1].traceback or "")
        n.cancel_scope.cancel()


async def test_unknown_type_fails_clearly_and_follows_retry_policy(rt: Runtime) -> None:
    app = Nexq()
    async with trio.open_nursery() as n:
        await start(n, rt, app)
        h = await app.enqueue("nobody_handles_this", max_retries=1, retry=__import__("nexq").RetryPolicy(base=0.01))
        with pytest.raises(TaskFailed, match="UnknownTaskType"):
            await h.result(timeout=15)
        assert len((await h.info()).attempts) == 2
        n.cancel_scope.cancel()


async def test_timeout_cancels_the_handler(rt: Runtime) -> None:
    app = Nexq()

    @app.task("slow", timeout=0.2, max_retries=0)
    async def slow(payload: Any) -> None:
        await trio.sleep(30)  # the work: far past its timeout

    async with trio.open_nursery() as n:
        await start(n, rt, app)
        h = await app.enqueue("slow")
        with pytest.raises(TaskFailed, match="TimeoutError"):
            await h.result(timeout=10)
        assert (await h.info()).attempts[0].outcome.value == "timeout"
        n.cancel_scope.cancel()


async def test_cancel_stops_a_running_handler_at_once(rt: Runtime) -> None:
    app = Nexq()
    started, finished = trio.Event(), []

    @app.task("long")
    async def long(payload: Any) -> None:
        started.set()
        await trio.sleep(60)  # the work: still running when cancelled
        finished.append(True)

    async with trio.open_nursery() as n:
        w = await start(n, rt, app)
        h = await app.enqueue("long")
        await started.wait()
        assert await h.cancel() is True
        with trio.fail_after(5):
            while w.running:
                await trio.sleep(0.01)
        assert (await h.status()) is Status.CANCELLED and not finished
        n.cancel_scope.cancel()


async def test_graceful_stop_hands_unfinished_attempts_back_at_once(rt: Runtime) -> None:
    app = Nexq()
    started = trio.Event()

    @app.task("long")
    async def long(payload: Any) -> None:
        started.set()
        await trio.sleep(60)  # the work: longer than the grace period

    @app.task("short")
    async def short(payload: Any) -> str:
        await started.wait()
        await trio.sleep(0.1)  # the work: done within the grace period
        return "done"

    app.bind(rt)
    w = Worker(rt, app, concurrency=2)
    async with trio.open_nursery() as n:
        await n.start(lambda task_status: w.run(grace=0.5, task_status=task_status))
        h_long = await app.enqueue("long")
        h_short = await app.enqueue("short")
        await started.wait()
        with trio.fail_after(10):
            while len(w.running) < 2:
                await trio.sleep(0.01)
        w.stop()
    # run() returned: the short one finished in the grace period, the long
    # one was handed back as pending (not waiting for its lease to expire).
    assert await h_short.result(timeout=1) == "done"
    t = await h_long.info()
    # attempt 2 is stored, but a hand-back does not use up a retry: still attempt 1 shown
    assert t.status is Status.PENDING and t.attempt == 1 and len(t.attempts) == 1
    assert t.attempts[0].error_type == "Interrupted"
    assert await rt.registry.list() == []


async def test_an_idle_worker_claims_a_lone_push_directly_and_a_batch_by_claim_rounds(rt: Runtime) -> None:
    app = Nexq()
    ran: list[int] = []

    @app.task("t")
    async def t(n: int) -> None:
        ran.append(n)

    directed, rounds = [0], [0]
    claim_pushed, claim = rt.broker.claim_pushed, rt.broker.claim

    async def counting_claim_pushed(*a: Any, **kw: Any) -> Any:
        got, settle = await claim_pushed(*a, **kw)
        directed[0] += len(got)
        return got, settle

    async def counting_claim(*a: Any, **kw: Any) -> Any:
        got = await claim(*a, **kw)
        rounds[0] += len(got)
        return got

    rt.broker.claim_pushed, rt.broker.claim = counting_claim_pushed, counting_claim  # type: ignore[method-assign]
    async with trio.open_nursery() as n:
        w = await start(n, rt, app, concurrency=8, poll_interval=5.0)  # rings only, no polling
        for i in range(5):
            await trio.sleep(0.05)  # the worker is idle again: each push is claimed from its ring
            await app.enqueue("t", i)
        with trio.fail_after(10):
            while len(ran) < 5:
                await trio.sleep(0.01)
        assert directed[0] == 5 and rounds[0] == 0
        await app.enqueue_many([("t", i) for i in range(5, 25)])  # a batch: claim rounds
        with trio.fail_after(10):
            while len(ran) < 25:
                await trio.sleep(0.01)
        assert sorted(ran) == list(range(25)) and directed[0] == 5 and rounds[0] == 20
        w.stop()
        n.cancel_scope.cancel()


class SlowSettles(WrappedStore):
    """A real store whose settle pipelines (slots marked taken) take 0.3 s
    more; the batches' kinds in the order they reach the store."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.order: list[str] = []

    async def execute(self, batch: Batch) -> list[Any]:
        ops = [(op, args) for op, args in batch.ops]
        if any(op == "set" and args[1] == b"~" for op, args in ops):
            await trio.sleep(0.3)
            self.order.append("settle")
        elif any(op == "set" and ":fin:" in str(args[0]) for op, args in ops):
            self.order.append("outcome")
        return await self.inner.execute(batch)


async def test_a_directly_claimed_attempt_runs_before_its_claim_settles_and_records_after(
        store: Store, prefix: str) -> None:
    slow = SlowSettles(store)
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":"), lease=2.0), slow)
    app = Nexq()
    started: list[float] = []

    @app.task("t")
    async def t(n: int) -> None:
        started.append(trio.current_time())

    async with trio.open_nursery() as n:
        w = await start(n, rt, app, concurrency=4, poll_interval=5.0)
        await trio.sleep(0.05)
        slow.order.clear()
        sent = trio.current_time()
        h = await app.enqueue("t", 1)
        with trio.fail_after(10):
            while (await rt.inspector.get(h.id)).status is not Status.SUCCEEDED:  # type: ignore[union-attr]
                await trio.sleep(0.01)
        assert started and started[0] - sent < 0.3  # the handler did not wait for the slow settle
        assert slow.order[:2] == ["settle", "outcome"]  # its outcome did
        w.stop()
        n.cancel_scope.cancel()
