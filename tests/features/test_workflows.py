"""Dependencies, chains and groups: children wait, joins get results, nothing sticks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from nexq.app import Nexq, TaskFailed
from nexq.config import Settings
from nexq.queue import Inspector, LaneReader, NodeBroker
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.worker import Worker
from nexq.store import Store
from nexq.task import Status


def make_app() -> Nexq:
    app = Nexq()

    @app.task("square")
    async def square(payload: Any) -> int:
        return int(payload) ** 2

    @app.task("total")
    async def total(ctx: Any, payload: Any) -> int:
        return sum(await ctx.parent_results())

    @app.task("boom", max_retries=0)
    async def boom(payload: Any) -> None:
        raise RuntimeError("boom")

    @app.task("echo")
    async def echo(payload: Any) -> Any:
        return payload

    return app


async def running(store, prefix, nursery) -> Nexq:  # type: ignore[no-untyped-def]
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store)
    app = make_app()
    app.bind(rt)
    await nursery.start(Worker(rt, app, concurrency=8).run)
    await nursery.start(Scheduler(rt.broker).run)
    return app


async def test_group_then_join_gets_its_parents_results(store: Store, prefix: str) -> None:
    async with trio.open_nursery() as n:
        app = await running(store, prefix, n)
        members, join = await app.group([("square", i) for i in range(1, 5)], then=("total", None))
        assert join is not None
        assert await join.result(timeout=30) == 1 + 4 + 9 + 16
        info = await members[0].info()
        assert info.children == (join.id,)
        assert (await join.info()).spec.depends_on == tuple(m.id for m in members)
        n.cancel_scope.cancel()


async def test_chain_runs_in_order_and_a_failure_cancels_the_rest(store: Store, prefix: str) -> None:
    async with trio.open_nursery() as n:
        app = await running(store, prefix, n)
        ok = await app.chain(("echo", 1), ("echo", 2), ("echo", 3))
        assert [await h.result(timeout=30) for h in ok] == [1, 2, 3]
        first, second, third = await app.chain(("boom", None), ("echo", "never"), ("echo", "never"))
        with pytest.raises(TaskFailed):
            await third.result(timeout=30)
        assert (await first.status()) is Status.DEAD
        for h in (second, third):
            t = await h.info()
            assert t.status is Status.CANCELLED and "ended" in t.attempts[0].error_message
        n.cancel_scope.cancel()


async def test_run_anyway_policy_runs_after_a_failed_parent(store: Store, prefix: str) -> None:
    async with trio.open_nursery() as n:
        app = await running(store, prefix, n)
        bad = await app.enqueue("boom")
        after = await app.enqueue("echo", "still", depends_on=[bad.id], on_parent_failure="run")
        assert await after.result(timeout=30) == "still"
        n.cancel_scope.cancel()


async def test_child_of_an_already_finished_parent_is_released(make_broker: Callable[..., NodeBroker]) -> None:
    br: NodeBroker = make_broker()
    reader = LaneReader(br.store, br.keys)
    parent = await br.enqueue("t", "p")
    [c] = await br.claim(["default"], 5, "w", reader)
    child = await br.enqueue("t", "c", depends_on=[parent.task_id])
    assert (await Inspector(br).get(child.task_id)).status is Status.WAITING
    assert await br.claim(["default"], 5, "w", reader) == []
    await br.ack(c, "done")  # the parent ends after the child registered
    [c2] = await br.claim(["default"], 5, "w", reader)
    assert c2.spec.id == child.task_id
    late = await br.enqueue("t", "late", depends_on=[parent.task_id])  # parent already ended
    [c3] = await br.claim(["default"], 5, "w", reader)
    assert c3.spec.id == late.task_id


async def test_waiting_task_can_be_cancelled_and_bad_parents_are_refused(make_broker: Callable[..., NodeBroker]) -> None:
    br: NodeBroker = make_broker()
    parent = await br.enqueue("t")
    child = await br.enqueue("t", depends_on=[parent.task_id])
    assert await br.cancel(child.task_id)
    with pytest.raises(ValueError, match="no task"):
        await br.enqueue("t", depends_on=["nope"])
    with pytest.raises(ValueError, match="on_parent_failure"):
        await br.enqueue("t", depends_on=[parent.task_id], on_parent_failure="maybe")
