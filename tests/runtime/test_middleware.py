"""Middleware: the public hook points, as a user's app meets them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import trio

import nexq
from nexq.config import Settings
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.worker import Worker
from nexq.store import Store


class Recorder(nexq.Middleware):
    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []

    def before_enqueue(self, node: Any, specs: Sequence[Any]) -> None:
        for s in specs:
            if s.payload == "refuse me":
                raise ValueError("payload: refused by policy")

    async def after_enqueue(self, node: Any, specs: Sequence[Any]) -> None:
        self.seen += [("enqueued", s.type) for s in specs]

    async def after_claim(self, node: Any, specs: Sequence[Any], attempts: Sequence[int], worker: str) -> None:
        self.seen += [("claimed", s.type, str(a)) for s, a in zip(specs, attempts)]

    async def before_process(self, ctx: nexq.Context) -> None:
        self.seen.append(("before", ctx.task.spec.type))

    async def after_process(self, ctx: nexq.Context, outcome: Any, result: Any, error: Any,
                            duration: float) -> None:
        self.seen.append(("after", ctx.task.spec.type, outcome.value if outcome else "none"))

    async def on_failure(self, node: Any, spec: Any, attempt: nexq.Attempt) -> None:
        self.seen.append(("failure", spec.type, attempt.error_type or ""))

    async def on_dead(self, node: Any, spec: Any) -> None:
        self.seen.append(("dead", spec.type))

    async def after_terminal(self, node: Any, event: nexq.Terminal) -> None:
        self.seen.append(("terminal", event.spec.type, event.state))


class Broken(nexq.Middleware):
    async def after_terminal(self, node: Any, event: nexq.Terminal) -> None:
        raise RuntimeError("a subscriber's bug")


@pytest.fixture
def app() -> nexq.Nexq:
    return nexq.Nexq(middleware=[Broken(), Recorder()])


async def run_until_done(store: Store, prefix: str, app: nexq.Nexq, handles: Any) -> None:
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store, app=app)
    app.bind(rt)
    async with trio.open_nursery() as n:
        await n.start(Scheduler(rt.broker).run)
        await n.start(Worker(rt, app, concurrency=2).run)
        with trio.fail_after(30):
            for h in await handles():
                try:
                    await h.result()
                except nexq.TaskFailed:
                    pass
        n.cancel_scope.cancel()


async def test_hooks_see_a_task_from_enqueue_to_its_end(store: Store, prefix: str, app: nexq.Nexq) -> None:
    recorder = app.middleware[1]
    assert isinstance(recorder, Recorder)

    @app.task("ok")
    async def ok(payload: Any) -> int:
        return 1

    @app.task("bad", max_retries=1, retry=nexq.RetryPolicy(base=0.01))
    async def bad(payload: Any) -> None:
        raise KeyError("boom")

    async def handles() -> list[nexq.TaskHandle]:
        return [await app.enqueue("ok"), await app.enqueue("bad")]

    await run_until_done(store, prefix, app, handles)
    seen = recorder.seen
    for event in [("enqueued", "ok"), ("claimed", "ok", "1"), ("before", "ok"), ("after", "ok", "succeeded"),
                  ("terminal", "ok", "succeeded"), ("failure", "bad", "KeyError"),
                  ("after", "bad", "failed"), ("dead", "bad"), ("terminal", "bad", "dead")]:
        assert event in seen
    # before -> after for every attempt, in that order; a broken subscriber
    # ahead of ours did not stop the queue or the other subscribers.
    assert seen.index(("before", "ok")) < seen.index(("after", "ok", "succeeded"))
    assert seen.count(("failure", "bad", "KeyError")) == 2


async def test_before_enqueue_refuses_and_nothing_is_written(store: Store, prefix: str,
                                                             app: nexq.Nexq) -> None:
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store, app=app)
    app.bind(rt)
    with pytest.raises(ValueError, match="refused by policy"):
        await app.enqueue_many([("a", 1), ("a", "refuse me")])
    page = await rt.inspector.list()
    assert page.tasks == []


async def test_a_handler_may_defer_without_using_a_retry(store: Store, prefix: str) -> None:
    app = nexq.Nexq()
    calls: list[int] = []

    @app.task("later", max_retries=0)
    async def later(ctx: nexq.Context, payload: Any) -> str:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise nexq.Defer(0.05, "not yet")
        return "done"

    async def handles() -> list[nexq.TaskHandle]:
        return [await app.enqueue("later")]

    await run_until_done(store, prefix, app, handles)
    [h] = [app.handle((await app.broker.inspector().list()).tasks[0].id)]
    t = await h.info()
    assert t.status is nexq.Status.SUCCEEDED and [a.outcome.value for a in t.attempts if a.outcome] == [
        "deferred", "succeeded"]
