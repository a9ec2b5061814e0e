"""Retry filters per task type: ``retry_on`` / ``dont_retry_on`` decide which
handler exceptions are retried; any other ends the task dead at once."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from nexq.app import Nexq, TaskFailed
from nexq.codec import encode_attempt
from nexq.config import Settings
from nexq.errors import NexqError, Retry
from nexq.queue import Inspector, LaneReader, NodeBroker
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.worker import Worker
from nexq.store.memory import MemoryStore
from nexq.task import Attempt, Outcome, Status, Task
from tests.clocks import trio_clock


async def run(app: Nexq, *types: str) -> tuple[list[Task], Worker]:
    """Enqueue one task of each type, run them to their end; their records and the worker."""
    rt = Runtime.build(Settings(), MemoryStore(), app=app, clock=trio_clock())
    app.bind(rt)
    w = Worker(rt, app, concurrency=4)
    async with trio.open_nursery() as n:
        await n.start(Scheduler(rt.broker).run)
        await n.start(w.run)
        handles = [await app.enqueue(t) for t in types]
        with trio.fail_after(600):
            for h in handles:
                with contextlib.suppress(TaskFailed):
                    await h.result()
        tasks = [await h.info() for h in handles]
        n.cancel_scope.cancel()
    return tasks, w


def failing(calls: list[str], *errors: BaseException) -> Any:
    """A handler raising ``errors`` in turn, then returning "ok"."""

    async def handler(payload: Any) -> str:
        calls.append("call")
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    return handler


async def test_retry_on_retries_only_the_listed_exceptions(autojump_clock: MockClock) -> None:
    app = Nexq()
    flaky_calls: list[str] = []
    broken_calls: list[str] = []
    app.register_handler("flaky", failing(flaky_calls, ConnectionError("reset")), max_retries=3,
                         retry_on=(TimeoutError, ConnectionError))
    app.register_handler("broken", failing(broken_calls, ValueError("bad input")), max_retries=3,
                         retry_on=(TimeoutError, ConnectionError))
    (flaky, broken), worker = await run(app, "flaky", "broken")
    assert flaky.status is Status.SUCCEEDED and len(flaky_calls) == 2
    # Not listed: dead after its first attempt though 3 retries were left,
    # with that attempt's error kept, and still counted as a failure.
    assert broken.status is Status.DEAD and len(broken_calls) == 1
    assert [(a.error_type, a.error_message) for a in broken.attempts] == [("ValueError", "bad input")]
    assert worker.failed == 2


async def test_dont_retry_on_ends_the_task_at_the_listed_exceptions(autojump_clock: MockClock) -> None:
    app = Nexq()
    missing: list[str] = []
    shaky: list[str] = []
    app.register_handler("missing", failing(missing, KeyError("user 7")), max_retries=3, dont_retry_on=KeyError)
    app.register_handler("shaky", failing(shaky, *[RuntimeError("again")] * 5), max_retries=2,
                         dont_retry_on=KeyError)
    (t_missing, t_shaky), _ = await run(app, "missing", "shaky")
    assert t_missing.status is Status.DEAD and len(missing) == 1
    assert t_missing.attempts[-1].error_type == "KeyError"
    assert t_shaky.status is Status.DEAD and len(shaky) == 3  # other errors: every retry is used


async def test_retry_always_retries_whatever_the_filters(autojump_clock: MockClock) -> None:
    app = Nexq()
    asked: list[str] = []
    also: list[str] = []
    # Retry is a NexqError and an Exception: neither filter stops it.
    app.register_handler("asked", failing(asked, Retry(delay=0.5)), retry_on=TimeoutError)
    app.register_handler("also", failing(also, Retry()), dont_retry_on=(NexqError, Exception))
    (t_asked, t_also), _ = await run(app, "asked", "also")
    assert t_asked.status is Status.SUCCEEDED and len(asked) == 2
    assert t_also.status is Status.SUCCEEDED and len(also) == 2


async def test_a_handler_timeout_counts_as_timeout_error(autojump_clock: MockClock) -> None:
    app = Nexq()
    slow_calls: list[str] = []

    async def slow_once(payload: Any) -> str:
        slow_calls.append("call")
        if len(slow_calls) == 1:
            await trio.sleep(10)  # the work: longer than the timeout
        return "ok"

    async def always_slow(payload: Any) -> None:
        await trio.sleep(10)  # the work: longer than the timeout

    app.register_handler("slow_once", slow_once, timeout=1, retry_on=(TimeoutError, ConnectionError))
    app.register_handler("always_slow", always_slow, timeout=1, max_retries=3, dont_retry_on=TimeoutError)
    (retried, ended), _ = await run(app, "slow_once", "always_slow")
    assert retried.status is Status.SUCCEEDED and len(slow_calls) == 2
    assert ended.status is Status.DEAD and len(ended.attempts) == 1
    assert ended.attempts[0].outcome is Outcome.TIMEOUT and ended.attempts[0].error_type == "TimeoutError"


@pytest.mark.parametrize("option,value", [
    ("retry_on", ValueError("x")), ("retry_on", "ValueError"), ("dont_retry_on", (KeyError, 3)),
    ("dont_retry_on", [KeyError]), ("retry_on", int),
])
def test_retry_filters_must_be_exception_classes(option: str, value: Any) -> None:
    app = Nexq()
    with pytest.raises(ValueError, match=f"@app.task\\('t'\\): {option} must be an exception class"):
        app.register_handler("t", failing([]), **{option: value})


def test_retry_filters_take_a_class_or_a_tuple() -> None:
    app = Nexq()
    td = app.register_handler("t", failing([]), retry_on=OSError, dont_retry_on=(FileNotFoundError,))
    assert td.retry_on == (OSError,) and td.dont_retry_on == (FileNotFoundError,)
    assert td.retries(ConnectionError()) and not td.retries(FileNotFoundError()) and not td.retries(KeyError())


async def test_a_final_failure_redone_after_a_crash_still_ends_dead(autojump_clock: MockClock) -> None:
    # The worker decides "failed, no retry" and dies before writing what
    # follows; the lease check redoes the follow-up from the outcome record
    # and must end the task dead too, though retries are left.
    store = MemoryStore()
    br = NodeBroker(store, clock=trio_clock(), lease_ms=2000, bucket_ms=100)
    e = await br.enqueue("t", None, max_retries=3)
    reader = LaneReader(store, br.keys)
    with trio.fail_after(60):
        while not (claimed := await br.claim(["default"], 1, "dying", reader)):
            await trio.sleep(0.05)
    [c] = claimed
    rec = Attempt(1, Outcome.FAILED, c.worker, c.started_at, br.clock(), "ValueError", "bad input")
    assert await store.set(br.keys.fin(e.task_id, 1), encode_attempt(rec, final=True), nx=True)
    await store.delete(br.keys.lease(e.task_id, 1))
    ins = Inspector(br)
    async with trio.open_nursery() as n:
        n.start_soon(Scheduler(br).run)
        with trio.fail_after(600):
            while not (t := await ins.get(e.task_id)) or not t.status.terminal:
                await trio.sleep(0.5)
        n.cancel_scope.cancel()
    assert t.status is Status.DEAD and len(t.attempts) == 1
    assert t.attempts[0].error_message == "bad input"


async def test_fail_with_final_ends_a_task_with_retries_left(autojump_clock: MockClock) -> None:
    br = NodeBroker(MemoryStore(), clock=trio_clock(), lease_ms=2000, bucket_ms=100)
    ends = {}
    for final in (False, True):
        e = await br.enqueue("t", None, max_retries=3)
        [c] = await br.claim(["default"], 1, "w", LaneReader(br.store, br.keys))
        assert await br.fail(c, ValueError("bad"), final=final)
        t = await Inspector(br).get(e.task_id)
        assert t is not None
        ends[final] = t.status
    assert ends == {False: Status.RETRYING, True: Status.DEAD}
