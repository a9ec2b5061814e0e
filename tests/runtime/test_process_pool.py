"""executor="process": handlers in handler processes, killed on timeout and
cancel, replaced after max_tasks; real processes, real redis-server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from nexq.app import Nexq, TaskFailed
from nexq.taskdef import TaskDef
from nexq.config import Settings
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.worker import Worker
from nexq.store import open_store
from nexq.task import Outcome, Status
from tests.runtime import cpu_app
from tests.runtime.procs import running


@pytest.fixture
async def runtime(resp_url: str, prefix: str) -> AsyncIterator[Callable[..., Runtime]]:
    async with open_store(resp_url) as store:
        def make(**settings: Any) -> Runtime:
            return Runtime.build(Settings(namespace=prefix.rstrip(":"), lease=5.0, **settings), store)

        yield make


async def start(nursery: trio.Nursery, rt: Runtime, **kw: Any) -> Worker:
    """A worker (and scheduler) for cpu_app's handlers on ``rt``."""
    cpu_app.app.bind(rt)
    w = Worker(rt, cpu_app.app, concurrency=kw.pop("concurrency", 2), **kw)
    await nursery.start(lambda task_status: w.run(grace=0.2, task_status=task_status))
    await nursery.start(Scheduler(rt.broker).run)
    return w


async def wait_pid(path: Path, limit: float = 20) -> int:
    """The pid a ``spin`` handler wrote, once it wrote it."""
    with trio.fail_after(limit):
        while not path.exists() or not path.read_text():
            await trio.sleep(0.02)
    return int(path.read_text())


async def wait_gone(pid: int, limit: float = 10) -> None:
    with trio.fail_after(limit):
        while running(pid):
            await trio.sleep(0.02)


# -- which handlers may run where ----------------------------------------------------


def plain(payload: Any) -> Any:
    return payload


async def coro(payload: Any) -> Any:
    return payload


def test_executor_defaults_by_function_kind_and_refuses_what_cannot_work() -> None:
    assert TaskDef("a", coro).executor == "async" and TaskDef("t", plain).executor == "thread"
    assert TaskDef("p", plain, executor="process").target == f"{__name__}:plain"
    with pytest.raises(ValueError, match="executor must be 'async', 'thread' or 'process', not 'fork'"):
        TaskDef("x", plain, executor="fork")
    with pytest.raises(ValueError, match="executor='process' does not fit an async function"):
        TaskDef("x", coro, executor="process")
    with pytest.raises(ValueError, match="executor='async' does not fit a plain"):
        TaskDef("x", plain, executor="async")

    def nested(payload: Any) -> None: ...

    with pytest.raises(ValueError, match="not a module-level function; define it at the top level"):
        TaskDef("x", nested, executor="process")
    with pytest.raises(ValueError, match="takes only the payload"):
        TaskDef("x", lambda ctx, payload: None, executor="process")
    app = Nexq()
    assert app.task("ok", executor="process")(plain).executor == "process"  # an option of @app.task


# -- in handler processes ----------------------------------------------------------------

slow = pytest.mark.slow


@slow
async def test_a_process_handler_runs_in_another_process_and_returns_its_result(
        runtime: Callable[..., Runtime]) -> None:
    async with trio.open_nursery() as n:
        w = await start(n, runtime())
        h = await cpu_app.app.enqueue("burn", {"seconds": 0.2})
        result = await h.result(timeout=30)
        assert result["pid"] != os.getpid() and result["spins"] > 0
        assert result["pid"] in w.processes.pids  # kept for the next task
        n.cancel_scope.cancel()
    assert not running(result["pid"])  # the worker's exit stopped it


@slow
async def test_a_timed_out_handler_process_is_killed_and_the_next_tasks_run(
        runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    async with trio.open_nursery() as n:
        await start(n, runtime())
        h = await cpu_app.app.enqueue("spin", {"pidfile": str(tmp_path / "pid")}, timeout=1.5)
        pid = await wait_pid(tmp_path / "pid")
        with pytest.raises(TaskFailed, match="timeout of 1.5 s"):
            await h.result(timeout=30)
        t = await h.info()
        assert t.status is Status.DEAD and [a.outcome for a in t.attempts] == [Outcome.TIMEOUT]
        assert not running(pid)  # killed before the attempt was recorded
        nexts = [await cpu_app.app.enqueue("burn", {}) for _ in range(3)]
        for nxt in nexts:
            assert (await nxt.result(timeout=30))["pid"] != pid
        n.cancel_scope.cancel()


@slow
async def test_cancel_kills_the_handler_process(runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    async with trio.open_nursery() as n:
        await start(n, runtime())
        h = await cpu_app.app.enqueue("spin", {"pidfile": str(tmp_path / "pid")})
        pid = await wait_pid(tmp_path / "pid")
        assert await h.cancel()
        await wait_gone(pid)
        assert (await h.info()).status is Status.CANCELLED
        assert (await (await cpu_app.app.enqueue("burn", {})).result(timeout=30))["pid"] != pid
        n.cancel_scope.cancel()


@slow
async def test_handler_processes_are_replaced_after_max_tasks(runtime: Callable[..., Runtime]) -> None:
    async with trio.open_nursery() as n:
        w = await start(n, runtime(process_max_tasks=2), concurrency=1)
        pids = [(await (await cpu_app.app.enqueue("burn", {})).result(timeout=30))["pid"] for _ in range(6)]
        n.cancel_scope.cancel()
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]
    assert len(set(pids)) == 3 and w.processes.started == 3
    assert not any(running(p) for p in pids)


@slow
async def test_an_exception_in_the_handler_process_keeps_its_type_message_and_traceback(
        runtime: Callable[..., Runtime]) -> None:
    async with trio.open_nursery() as n:
        await start(n, runtime())
        h = await cpu_app.app.enqueue("fail", 7)
        with pytest.raises(TaskFailed, match="ValueError: bad input 7"):
            await h.result(timeout=30)
        [attempt] = (await h.info()).attempts
        assert attempt.error_type == "ValueError" and attempt.error_message == "bad input 7"
        tb = attempt.traceback or ""
        assert "cpu_app.py" in tb and 'raise ValueError(f"bad input {payload}")' in tb
        n.cancel_scope.cancel()


@slow
async def test_a_dying_handler_process_fails_the_attempt_and_retry_works_across_processes(
        runtime: Callable[..., Runtime], tmp_path: Path) -> None:
    async with trio.open_nursery() as n:
        await start(n, runtime())
        died = await cpu_app.app.enqueue("exit", None)
        with pytest.raises(TaskFailed, match="HandlerProcessDied: the handler's process .* exited with code 3"):
            await died.result(timeout=30)
        again = await cpu_app.app.enqueue("again", {"mark": str(tmp_path / "mark")})
        await again.result(timeout=30)
        t = await again.info()
        assert [a.outcome for a in t.attempts] == [Outcome.FAILED, Outcome.SUCCEEDED]
        assert t.attempts[0].error_type == "Retry"
        n.cancel_scope.cancel()
