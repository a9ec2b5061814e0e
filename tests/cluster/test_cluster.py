"""Several store nodes behind one runtime: routing, aggregation, moves.

Each node is a real store of its own (embedded stores here; the process
test uses redis-servers). What is checked is where keys land, so the tests
read the node stores directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from nexq.api import create_app
from nexq.app import Nexq
from nexq.config import Settings
from nexq.errors import StoreUnavailable
from nexq.queue.cluster import ClusterBroker
from nexq.runtime.node_report import node_report
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.worker import Worker
from nexq.store import Store, open_stores
from nexq.task import Status

NAMES = ["n1:9401", "n2:9401", "n3:9401"]
QUEUES = [f"q{i}" for i in range(12)]


@pytest.fixture
async def stores() -> AsyncIterator[list[Store]]:
    async with open_stores(["memory://"] * 4) as s:
        yield s


def make_app() -> Nexq:
    app = Nexq()

    @app.task("echo")
    async def echo(payload: Any) -> Any:
        return payload

    @app.task("add")
    async def add(ctx: Any, payload: Any) -> int:
        return sum(await ctx.parent_results()) + int(payload)

    return app


def runtime(stores: list[Store], n: int) -> tuple[Runtime, Nexq]:
    rt = Runtime.build(Settings(namespace="c"), stores[:n], NAMES[:n] + ["n4:9401"][: max(0, n - 3)])
    app = make_app()
    app.bind(rt)
    return rt, app


def placed(rt: Runtime, queue: str) -> int:
    assert isinstance(rt.broker, ClusterBroker)
    return rt.broker.node_of(queue)


async def test_tasks_live_on_their_queues_node_and_all_run(stores: list[Store]) -> None:
    rt, app = runtime(stores, 3)
    handles = await app.enqueue_many([("echo", i, {"queue": QUEUES[i % 12]}) for i in range(120)])
    assert len({placed(rt, q) for q in QUEUES}) == 3, "12 queues should use all three nodes"
    for h in handles[:24]:
        q = (await h.info()).spec.queue
        where = [await s.get(f"c:spec:{h.id}") is not None for s in stores[:3]]
        assert where == [i == placed(rt, q) for i in range(3)], (q, where)
    async with trio.open_nursery() as nursery:
        await nursery.start(Worker(rt, app, concurrency=16).run)
        results = [await h.result(timeout=30) for h in handles]
        nursery.cancel_scope.cancel()
    assert results == list(range(120))
    stats = {s["name"]: s for s in await rt.inspector.queue_stats()}
    assert sorted(stats) == sorted(QUEUES)
    assert sum(s["succeeded"] for s in stats.values()) == 120
    assert all(s["nodes"] == [NAMES[placed(rt, q)]] for q, s in stats.items())
    assert sum(row["processed"] for row in await rt.inspector.throughput(5)) == 120


async def test_listing_pages_through_every_node_once(stores: list[Store]) -> None:
    rt, app = runtime(stores, 3)
    handles = await app.enqueue_many([("echo", i, {"queue": QUEUES[i % 12]}) for i in range(50)])
    seen: list[str] = []
    cursor: Any = None
    for _ in range(20):
        page = await rt.inspector.list(limit=7, cursor=cursor)
        seen += [t.id for t in page.tasks]
        assert isinstance(page.next_cursor, (str, type(None)))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(h.id for h in handles)
    assert len(seen) == len(set(seen))
    only = await rt.inspector.list(queue="q3", limit=100)
    assert {t.spec.queue for t in only.tasks} == {"q3"} and len(only.tasks) == len([i for i in range(50) if i % 12 == 3])
    with pytest.raises(ValueError, match="cursor"):
        await rt.inspector.list(cursor="12")


async def test_ids_route_to_their_node(stores: list[Store]) -> None:
    rt, app = runtime(stores, 3)
    h = await app.enqueue("echo", 1, queue="q5", delay=60)
    fresh = Runtime.build(Settings(namespace="c"), stores[:3], NAMES)  # knows no ids yet
    assert (await fresh.inspector.get(h.id)).status is Status.SCHEDULED  # type: ignore[union-attr]
    assert await fresh.broker.cancel(h.id)
    assert (await rt.inspector.get(h.id)).status is Status.CANCELLED  # type: ignore[union-attr]
    assert await fresh.inspector.get("no-such-task") is None
    assert not await fresh.broker.cancel("no-such-task")
    assert await fresh.inspector.requeue(h.id)
    assert await fresh.inspector.delete(h.id)
    assert await rt.inspector.get(h.id) is None


async def test_dependencies_stay_on_one_node(stores: list[Store]) -> None:
    rt, app = runtime(stores, 3)
    by_node: dict[int, list[str]] = {}
    for q in QUEUES:
        by_node.setdefault(placed(rt, q), []).append(q)
    (qa, qb), qc = by_node[0][:2], by_node[1][0]
    parent = await app.enqueue("echo", 1, queue=qa)
    with pytest.raises(ValueError, match="same node"):
        await app.enqueue("add", 1, queue=qc, depends_on=[parent.id])
    assert await stores[1].get("c:seq") is None or len((await rt.inspector.list(queue=qc)).tasks) == 0
    child = await app.enqueue("add", 10, queue=qb, depends_on=[parent.id])
    async with trio.open_nursery() as nursery:
        await nursery.start(Worker(rt, app, concurrency=4).run)
        assert await child.result(timeout=30) == 11
        nursery.cancel_scope.cancel()


async def test_pause_holds_a_queue_on_every_node(stores: list[Store]) -> None:
    rt, app = runtime(stores, 3)
    await app.enqueue("echo", 1, queue="q1")
    await rt.inspector.pause("q1")
    assert all([await s.get("c:paused:q1") == b"1" for s in stores[:3]])
    [st] = await rt.inspector.queue_stats(["q1"])
    assert st["paused"] and st["pending"] == 1
    await rt.inspector.resume("q1")
    assert not (await rt.inspector.queue_stats(["q1"]))[0]["paused"]


async def test_a_node_going_down_does_not_stop_the_others() -> None:
    from contextlib import ExitStack

    from tests.servers import redis_server

    with ExitStack() as stack:
        servers = [stack.enter_context(redis_server()) for _ in range(3)]
        async with open_stores([s.url for s in servers], command_timeout=1, connect_timeout=1) as real:
            rt, app = runtime(real, 3)
            dead_q = next(q for q in QUEUES if placed(rt, q) != 0)  # not the home node
            dead = placed(rt, dead_q)
            alive_q = next(q for q in QUEUES if placed(rt, q) != dead)
            h = await app.enqueue("echo", 7, queue=alive_q, delay=0.3)
            servers[dead].stop(kill=True)
            with pytest.raises(StoreUnavailable):
                await app.enqueue("echo", 8, queue=dead_q)
            health = await (await create_app(rt).test_client().get("/healthz")).get_json()
            assert health["status"] == "degraded" and health["nodes_down"] == [NAMES[dead]]
            async with trio.open_nursery() as nursery:
                await nursery.start(Worker(rt, app, concurrency=4).run)
                await nursery.start(Scheduler(rt.broker).run)
                # the wheel and the claims still run on the other nodes
                assert await h.result(timeout=30) == 7
                report = {n["name"]: n["reachable"] for n in await node_report(rt)}
                assert report == {name: i != dead for i, name in enumerate(NAMES)}
                nursery.cancel_scope.cancel()


async def test_adding_a_node_moves_only_its_queues_and_old_tasks_drain(stores: list[Store]) -> None:
    """The documented move: tasks already on the old node keep running there
    (workers claim a queue on every node that holds it) while new ones go to
    the new node; the node report shows the old node draining until empty."""
    rt2, app2 = runtime(stores, 3)
    before = {q: placed(rt2, q) for q in QUEUES}
    old = await app2.enqueue_many([("echo", i, {"queue": q}) for i, q in enumerate(QUEUES)])
    rt3 = Runtime.build(Settings(namespace="c"), stores, NAMES + ["n4:9401"])
    app3 = make_app()
    app3.bind(rt3)
    after = {q: placed(rt3, q) for q in QUEUES}
    moved = [q for q in QUEUES if before[q] != after[q]]
    assert moved and all(after[q] == 3 for q in moved)
    new = await app3.enqueue_many([("echo", 100 + i, {"queue": q}) for i, q in enumerate(QUEUES)])
    report = {n["name"]: n for n in await node_report(rt3)}
    draining = {q for n in report.values() for q in n["draining"]}
    assert draining == set(moved)
    assert set(report["n4:9401"]["queues"]) == set(moved)
    async with trio.open_nursery() as nursery:
        await nursery.start(Worker(rt3, app3, concurrency=8).run)
        got = [await h.result(timeout=30) for h in old + new]
        nursery.cancel_scope.cancel()
    assert got == list(range(12)) + list(range(100, 112))
    report = {n["name"]: n for n in await node_report(rt3)}
    assert all(not n["draining"] for n in report.values())


async def test_drain_first_then_switch(stores: list[Store]) -> None:
    """The strict variant in docs/scaling.md: empty the moving queues on the
    old list (the plan's queues show no live work), then switch: nothing is
    draining and the moved queues start on the new node."""
    rt2, app2 = runtime(stores, 3)
    rt3 = Runtime.build(Settings(namespace="c"), stores, NAMES + ["n4:9401"])
    moved = [q for q in QUEUES if placed(rt2, q) != placed(rt3, q)]
    old = await app2.enqueue_many([("echo", i, {"queue": q}) for i, q in enumerate(moved * 3)])
    report = await node_report(rt2)
    assert sum(n["live"][q]["pending"] for n in report for q in moved if q in n["live"]) == len(old)
    async with trio.open_nursery() as nursery:
        await nursery.start(Worker(rt2, app2, concurrency=8).run)
        for h in old:
            await h.result(timeout=30)
        nursery.cancel_scope.cancel()
    report = await node_report(rt2)
    assert all(not any(n["live"][q].values()) for n in report for q in moved if q in n["live"])
    app3 = make_app()
    app3.bind(rt3)
    assert all(not n["draining"] for n in await node_report(rt3))
    h = await app3.enqueue("echo", 1, queue=moved[0])
    assert await stores[3].get(f"c:spec:{h.id}") is not None
