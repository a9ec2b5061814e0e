"""Task types: where each option of an enqueue comes from, the defaults
live workers publish, and the cache in front of them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from nexq.app import Nexq
from nexq.config import Settings
from nexq.runtime.cron import CronEntry
from nexq.runtime.runtime import Runtime
from nexq.runtime.task_types import REFRESH, TaskTypes, TypeDefaults, build_request
from nexq.runtime.worker import Worker
from nexq.store import Store
from nexq.store.memory import MemoryStore
from nexq.task import RetryPolicy


def test_each_option_is_the_callers_else_the_handlers_else_the_workers_else_the_global() -> None:
    local = TypeDefaults(queue="local-q", priority=7, retry=RetryPolicy(base=2.0))
    registered = TypeDefaults(queue="worker-q", priority=2, max_retries=0, timeout=9.0,
                              webhook="https://example.com/hook")
    req = build_request("t", {"x": 1}, {"priority": 1, "timeout": None}, local, registered)
    assert req.payload == {"x": 1}
    assert req.priority == 1  # the caller's
    assert req.queue == "local-q" and req.retry == RetryPolicy(base=2.0)  # the handler's
    # None is "not given": the workers' timeout, like their max_retries and webhook
    assert (req.max_retries, req.timeout, req.webhook) == (0, 9.0, "https://example.com/hook")
    bare = build_request("t", None, {}, None, None)
    assert (bare.queue, bare.priority, bare.max_retries, bare.timeout) == ("default", 5, 3, None)


def test_an_unknown_option_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="unknown option 'queu'"):
        build_request("t", None, {"queu": "mail"}, None, None)


def mail_app(digest: str = "0 6 * * *", **defaults: Any) -> Nexq:
    app = Nexq()

    @app.task("deliver_mail", **defaults)
    async def deliver(payload: Any) -> Any:
        return payload

    app.cron("mail-digest", digest, "deliver_mail", {"digest": True})
    return app


@asynccontextmanager
async def worker(store: Store, ns: str, app: Nexq, queues: tuple[str, ...] = ("*",)) -> AsyncIterator[Worker]:
    """A real worker of ``app`` on ``store``, registered (and so publishing)
    once entered, deregistered on exit."""
    rt = Runtime.build(Settings(namespace=ns), store, app=app)
    app.bind(rt)
    w = Worker(rt, app, queues=queues, concurrency=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: w.run(grace=1.0, task_status=task_status))
        yield w
        w.stop()


async def test_a_producer_without_the_handler_enqueues_with_the_newest_live_workers_defaults(
        store: Store, prefix: str) -> None:
    ns = prefix.rstrip(":")
    producer = Nexq()  # no handlers: only the registry knows deliver_mail
    rt = Runtime.build(Settings(namespace=ns), store, app=producer)
    producer.bind(rt)
    before = await producer.enqueue("deliver_mail")
    assert (await before.info()).spec.queue == "default"  # no worker yet: the global defaults

    async with worker(store, ns, mail_app(queue="mail", max_retries=0, priority="high", timeout=12)) as first:
        await rt.task_types.catalog(fresh=True)  # skip the wait for the cache to expire
        spec = (await (await producer.enqueue("deliver_mail", {"n": 1})).info()).spec
        assert (spec.queue, spec.max_retries, spec.priority, spec.timeout) == ("mail", 0, 9, 12)
        spec = (await (await producer.enqueue("deliver_mail", queue="urgent")).info()).spec
        assert (spec.queue, spec.max_retries) == ("urgent", 0)  # the caller's option first

        async with worker(store, ns, mail_app("0 7 * * *", queue="mail2", max_retries=1)) as second:
            await rt.task_types.catalog(fresh=True)
            [handle] = await producer.enqueue_many([("deliver_mail", None)])
            spec = (await handle.info()).spec
            assert (spec.queue, spec.max_retries, spec.priority) == ("mail2", 1, 5)  # the newest wins
            [described] = await rt.task_types.describe()
            assert described["workers"] == [first.id, second.id]
            assert described["defaults"]["queue"] == "mail2" and not described["local"]
            [conflict] = described["conflicts"]  # visible: two live workers disagree
            assert conflict["workers"] == [first.id] and conflict["defaults"]["queue"] == "mail"
            [entry] = await rt.cron.status()  # the same for cron entries
            assert (entry["schedule"], entry["workers"]) == ("0 7 * * *", [first.id, second.id])
            [conflict] = entry["conflicts"]
            assert conflict["workers"] == [first.id] and conflict["entry"]["schedule"] == "0 6 * * *"

        # The newer worker left: its publication went with it.
        await rt.task_types.catalog(fresh=True)
        spec = (await (await producer.enqueue("deliver_mail")).info()).spec
        assert spec.queue == "mail"
        [entry] = await rt.cron.status()  # the worker's cron entry, listed where it is not defined
        assert (entry["name"], entry["here"], entry["workers"]) == ("mail-digest", False, [first.id])
        # ... and a fire of it here gets the type's defaults from the worker
        assert await Runtime.build(Settings(namespace=ns), store, app=_cron_only()).cron.fire(
            CronEntry.parse("mail-digest", "0 6 * * *", "deliver_mail"), 1_800_000_000.0)
        fired = (await rt.inspector.list(type="deliver_mail", limit=1)).tasks[0]
        assert (fired.spec.queue, fired.spec.max_retries) == ("mail", 0)


def _cron_only() -> Nexq:
    app = Nexq()
    app.cron("mail-digest", "0 6 * * *", "deliver_mail")
    return app


async def test_the_local_handler_comes_before_the_workers_defaults(store: Store, prefix: str) -> None:
    ns = prefix.rstrip(":")
    here = Nexq()

    @here.task("deliver_mail", priority=7)  # sets priority only
    async def deliver(payload: Any) -> Any:
        return payload

    rt = Runtime.build(Settings(namespace=ns), store, app=here)
    here.bind(rt)
    async with worker(store, ns, mail_app(queue="mail", max_retries=0, priority=2)):
        await rt.task_types.catalog(fresh=True)
        spec = (await (await here.enqueue("deliver_mail")).info()).spec
        assert (spec.queue, spec.max_retries, spec.priority) == ("mail", 0, 7)
        [described] = await rt.task_types.describe()
        assert described["local"] and described["defaults"]["priority"] == 7


async def test_a_cron_fire_gets_its_types_handler_defaults(store: Store, prefix: str) -> None:
    app = mail_app(queue="mail", max_retries=0)
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store, app=app)
    [entry] = app.cron_entries
    assert await rt.cron.fire(entry, 1_800_000_000.0)
    [task] = (await rt.inspector.list(limit=5)).tasks
    assert (task.spec.queue, task.spec.max_retries, task.spec.payload) == ("mail", 0, {"digest": True})


async def test_enqueueing_reads_the_workers_defaults_at_most_once_per_refresh(autojump_clock: MockClock) -> None:
    store = MemoryStore()
    rt = Runtime.build(Settings(namespace="n"), store)
    reads = 0

    async def counted() -> list[dict[str, Any]]:
        nonlocal reads
        reads += 1
        return await rt.registry.publications()

    types = TaskTypes({}, counted)
    async with worker(store, "n", mail_app(queue="mail")):
        for _ in range(200):
            assert (await types.request("deliver_mail")).queue == "mail"
        assert reads == 1
        await trio.sleep(REFRESH)  # the behaviour: the snapshot ages (mock clock, no real wait)
        await types.requests([("deliver_mail", None, {})] * 50)
        assert reads == 2


def handler(payload: Any) -> Any:
    return payload


@pytest.mark.parametrize("options", [
    {"queu": "mail"}, {"queue": "a b"}, {"priority": "urgent"}, {"max_retries": -1},
    {"timeout": 0}, {"rate_limit": "fast"}, {"concurrency_limit": 0},
])
def test_a_bad_handler_option_fails_at_the_decorator(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        Nexq().task("t", **options)(handler)


@pytest.mark.parametrize("options", [{"queu": "mail"}, {"queue": "a:b"}, {"max_retries": "3"}])
def test_a_bad_cron_option_fails_at_app_cron(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        Nexq().cron("c", "* * * * *", "t", **options)
