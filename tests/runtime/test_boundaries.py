"""Error boundaries: nothing a handler returns or raises, no store error and
no value written behind Nexq's back ends a worker or a scheduler."""

from __future__ import annotations

import decimal
import logging
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexq.app import Nexq
from nexq.config import Settings
from nexq.errors import ResultNotSerializable
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler, save_advice
from nexq.runtime.worker import Worker
from nexq.store import open_store
from nexq.store.memory import MemoryStore
from nexq.task import DEFAULT_PRIORITY, RetryPolicy, Status
from tests.clocks import trio_clock

FAST_RETRY = RetryPolicy(base=0.01, cap=0.01)
PRIORITY = DEFAULT_PRIORITY

# -- handler results ------------------------------------------------------------

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                      st.floats(allow_nan=False, allow_infinity=False), text)
json_value = st.recursive(json_leaf, lambda c: st.one_of(st.lists(c, max_size=3),
                                                          st.dictionaries(text, c, max_size=3)), max_leaves=8)
# Leaves JSON cannot carry; every non-JSON value below holds at least one.
poison_leaf = st.one_of(
    st.binary(max_size=4), st.sets(st.integers(), max_size=2), st.frozensets(st.integers(), max_size=2),
    st.decimals(allow_nan=False, allow_infinity=False), st.complex_numbers(allow_nan=False),
    st.builds(object), st.dictionaries(st.integers(), json_leaf, min_size=1, max_size=2),
    st.integers(min_value=2**64), st.just("\ud800 lone surrogate"),
)
poisoned = st.recursive(poison_leaf, lambda c: st.one_of(
    st.tuples(c, st.lists(json_value, max_size=2)).map(lambda t: [*t[1], t[0]]),
    st.tuples(text, c, st.dictionaries(text, json_value, max_size=2)).map(lambda t: {**t[2], t[0]: t[1]}),
), max_leaves=4)


def is_json(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def new_app() -> Nexq:
    """An app with a "plain" task, which shows the worker still runs (:func:`still_working`)."""
    app = Nexq()

    @app.task("plain")
    async def plain(_: Any) -> str:
        return "fine"

    return app


async def still_working(app: Nexq) -> None:
    assert await (await app.enqueue("plain")).result(timeout=10) == "fine"


async def ended(h: Any) -> Any:
    """The task of handle ``h`` once it succeeded or is dead."""
    while (t := await h.info()).status not in (Status.SUCCEEDED, Status.DEAD):
        await trio.sleep(0.01)
    return t


async def run_app(app: Nexq, body: Callable[[Runtime], Any], *,
                  prepare: Callable[[Runtime], Any] | None = None) -> None:
    """A worker and a scheduler on an embedded store around ``body(rt)``
    (after ``prepare(rt)``, which runs before they start); fails if either
    ends before ``body`` is done."""
    rt = Runtime.build(Settings(namespace="b"), MemoryStore(), app=app, clock=trio_clock())
    app.bind(rt)
    if prepare is not None:
        await prepare(rt)
    async with trio.open_nursery() as n:
        await n.start(Worker(rt, app, concurrency=4).run)
        await n.start(Scheduler(rt.broker).run)
        await body(rt)
        n.cancel_scope.cancel()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(json_value, poisoned), min_size=1, max_size=6))
def test_only_json_results_succeed_and_the_worker_keeps_running(values: list[Any]) -> None:
    app = new_app()

    @app.task("give", max_retries=1, retry=FAST_RETRY)
    async def give(i: int) -> Any:
        return values[i]

    async def body(rt: Runtime) -> None:
        handles = [await app.enqueue("give", i) for i in range(len(values))]
        with trio.fail_after(60):
            for h, value in zip(handles, values):
                t = await ended(h)
                if is_json(value):
                    assert t.status is Status.SUCCEEDED and t.result == orjson.loads(orjson.dumps(value))
                else:  # failed like any handler error: retried once, then dead
                    assert t.status is Status.DEAD and len(t.attempts) == 2, t
                    for a in t.attempts:
                        assert a.error_type == "ResultNotSerializable" and "is not JSON" in (a.error_message or "")
            await still_working(app)

    trio.run(run_app, app, body, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_a_bytes_result_names_its_type() -> None:
    app = Nexq()

    @app.task("b", max_retries=0)
    async def b(_: Any) -> bytes:
        return b"raw"

    async def body(rt: Runtime) -> None:
        with trio.fail_after(10):
            t = await ended(await app.enqueue("b"))
        assert t.status is Status.DEAD and t.attempts[0].error_type == ResultNotSerializable.__name__
        assert (t.attempts[0].error_message or "").startswith("bytes is not JSON")

    await run_app(app, body)


# -- what a handler raises ---------------------------------------------------------


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class Custom(BaseException):
    pass


RAISES: dict[str, BaseException] = {
    "unprintable": Unprintable(),
    "surrogate": ValueError("bad \ud800 text"),
    "exit": SystemExit(3),
    "custom": Custom("a BaseException subclass"),
    "group": ExceptionGroup("many", [ValueError("a"), KeyError("b")]),
}


async def test_whatever_a_handler_raises_fails_only_its_attempt() -> None:
    app = new_app()

    @app.task("raise", max_retries=0)
    async def raise_(name: str) -> None:
        raise RAISES[name]

    async def body(rt: Runtime) -> None:
        handles = {name: await app.enqueue("raise", name) for name in RAISES}
        with trio.fail_after(10):
            for name, h in handles.items():
                t = await ended(h)
                assert t.status is Status.DEAD and t.attempts[0].error_type == type(RAISES[name]).__name__, name
            await still_working(app)
        t = await handles["unprintable"].info()
        assert t.attempts[0].error_message == "<unprintable Unprintable>"

    await run_app(app, body)


# -- values written behind Nexq's back ------------------------------------------------

GARBAGE = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"", b"{}", b"[]", b'{"id": 1}', b"1|pending|x|0", b"P|x|one|2|,", b"x|y", b"\xff\xfe|1",
                     b"P|ghost|1|5|,L|||,", b"9" * 30, b"~~"]),
)
KINDS = ("spec", "cur", "fin", "slot", "wheel")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(KINDS), GARBAGE), min_size=1, max_size=6))
def test_garbage_in_any_key_costs_only_its_own_task(corruptions: list[tuple[str, bytes]]) -> None:
    app = Nexq()
    first_tries: set[str] = set()

    @app.task("t", max_retries=3, retry=FAST_RETRY)
    async def t(payload: Any) -> str:
        if payload.get("flaky") and payload["n"] not in first_tries:
            first_tries.add(payload["n"])
            raise RuntimeError("first attempt fails: its follow-up reads cur")
        return "ok"

    good: list[Any] = []

    async def prepare(rt: Runtime) -> None:
        # Before any worker runs: victims and good tasks interleaved in one
        # lane (slot n = enqueue order), delayed good tasks sharing wheel
        # buckets with the garbage, then the garbage.
        node = rt.broker.home
        k, store, wheel = node.keys, node.store, node.ctx.wheel
        victims, slots = [], []
        for i, (kind, _) in enumerate(corruptions):
            good.append(await app.enqueue("t", {"n": f"g{i}"}))
            delay = {"delay": 1.0} if kind == "wheel" else {}
            victims.append(await app.enqueue("t", {"n": f"v{i}", "flaky": True}, **delay))
            slots.append(2 * i + 2 - sum(1 for c, _ in corruptions[:i] if c == "wheel"))
            good.append(await app.enqueue("t", {"n": f"d{i}", "flaky": True}, delay=1.0))
        due = rt.broker.clock() + 1.0
        for i, (kind, junk) in enumerate(corruptions):
            tid = victims[i].id
            if kind == "spec":
                await store.set(k.spec(tid), junk)
            elif kind == "cur":
                await store.set(k.cur(tid), junk)
            elif kind == "fin":
                await store.set(k.fin(tid, 1), junk)
            elif kind == "slot":
                await store.set(k.lane_slot("default", PRIORITY, slots[i]), junk)
            else:
                await store.append(k.wheel(wheel.bucket_of(due)), junk)

    async def body(rt: Runtime) -> None:
        with trio.fail_after(600):
            for h in good:
                assert await h.result(timeout=600) == "ok"
            assert await (await app.enqueue("t", {"n": "after"})).result(timeout=60) == "ok"

    trio.run(run_wrapped, app, body, prepare, clock=trio.testing.MockClock(autojump_threshold=0))


async def run_wrapped(app: Nexq, body: Callable[[Runtime], Any], prepare: Callable[[Runtime], Any]) -> None:
    # Quiet: every malformed value is logged as an error, by design.
    logging.getLogger("nexq").setLevel(logging.CRITICAL)
    try:
        await run_app(app, body, prepare=prepare)
    finally:
        logging.getLogger("nexq").setLevel(logging.NOTSET)


# -- store errors -----------------------------------------------------------------------


async def test_a_store_error_taking_a_rate_limit_defers_the_attempt(own_redis: Any, prefix: str) -> None:
    # Our own redis-server even when the suite runs on Pogocache: only a
    # server with lists can make the limit's key answer WRONGTYPE.
    import redis

    checker = redis.Redis.from_url(own_redis.url, protocol=2)
    ns = prefix.rstrip(":")
    app = Nexq()

    @app.task("limited", rate_limit="100/s", max_retries=0)
    async def limited(_: Any) -> str:
        return "ran"

    head = f"{ns}:limit:limited:tat:head"
    checker.rpush(head, "a list, not a string")  # GET answers WRONGTYPE: a store error
    async with open_store(own_redis.url) as store:
        rt = Runtime.build(Settings(namespace=ns), store, app=app)
        app.bind(rt)
        async with trio.open_nursery() as n:
            w = Worker(rt, app, concurrency=2)
            await n.start(w.run)
            await n.start(Scheduler(rt.broker).run)
            h = await app.enqueue("limited")
            with trio.fail_after(20):
                while not any(a.outcome and a.outcome.value == "deferred" for a in (await h.info()).attempts):
                    await trio.sleep(0.05)
            checker.delete(head)
            assert await h.result(timeout=20) == "ran"
            t = await h.info()
            assert "WRONGTYPE" in (t.attempts[0].error_message or "")  # deferred, not counted
            n.cancel_scope.cancel()


async def test_every_loop_survives_the_store_going_away(own_redis: Any) -> None:
    app = Nexq()

    @app.task("t")
    async def t(_: Any) -> str:
        return "ok"

    url = f"pogocache://127.0.0.1:{own_redis.port}"  # as Pogocache: the SAVE loop runs too
    async with open_store(url, command_timeout=0.5) as store:
        rt = Runtime.build(Settings(namespace="away", lease=1.5), store, app=app)
        app.bind(rt)
        async with trio.open_nursery() as n:
            w = Worker(rt, app, concurrency=2)
            sched = Scheduler(rt.broker, save_interval=0.2, sweep_interval=0.2)
            await n.start(w.run)
            await n.start(sched.run)
            await n.start(rt.guard.run)
            assert await (await app.enqueue("t")).result(timeout=10) == "ok"
            own_redis.stop(kill=True)
            boundaries = [w._claiming, w._beating, sched._wheel, sched._sweep, rt.guard._boundary]
            with trio.fail_after(30):
                while not all(b.total for b in boundaries):
                    await trio.sleep(0.1)
            own_redis.start()
            with trio.fail_after(30):
                while True:
                    try:
                        h = await app.enqueue("t")
                        break
                    except Exception:  # noqa: BLE001 - still reconnecting
                        await trio.sleep(0.1)
                assert await h.result(timeout=30) == "ok"
            n.cancel_scope.cancel()


async def test_cron_survives_fires_refused_by_a_full_store(autojump_clock: Any, caplog: Any) -> None:
    app = Nexq()
    app.cron("tick", "* * * * * *", "t")  # every second
    rt = Runtime.build(Settings(namespace="cron"), MemoryStore(), app=app, clock=trio_clock())
    rt.guard.refusing = "the store is full (this test says so)"
    async with trio.open_nursery() as n:
        await n.start(rt.cron.run)
        with trio.fail_after(30):
            while not any("cron tick" in r.getMessage() and "full" in r.getMessage() for r in caplog.records):
                await trio.sleep(0.5)
        rt.guard.refusing = None
        with trio.fail_after(30):
            while rt.cron.fired == 0:
                await trio.sleep(0.5)
        n.cancel_scope.cancel()


def test_a_save_without_persist_says_how_to_fix_it() -> None:
    assert "--persist FILE" in save_advice("ERR path not provided")


async def test_a_failing_save_warns_once_then_at_most_hourly(own_redis: Any, caplog: Any) -> None:
    import os
    import shutil

    shutil.rmtree(own_redis.dir)  # SAVE now fails: redis cannot write its temp file
    try:
        async with open_store(f"pogocache://127.0.0.1:{own_redis.port}") as store:
            from nexq.queue import NodeBroker

            br = NodeBroker(store, namespace="nosave")
            sched = Scheduler(br, save_interval=0.02)
            with caplog.at_level(logging.WARNING, logger="nexq.scheduler"):
                async with trio.open_nursery() as n:
                    await n.start(sched.run)
                    with trio.fail_after(10):
                        while sum(sched._save_nag._held.values()) < 20:  # 20 more failed SAVEs
                            await trio.sleep(0.02)
                    n.cancel_scope.cancel()
        lines = [r.getMessage() for r in caplog.records if "SAVE failed" in r.getMessage()]
        assert len(lines) == 1 and "said again in an hour" in lines[0], lines
    finally:
        os.makedirs(own_redis.dir, exist_ok=True)


@pytest.mark.parametrize("value", [decimal.Decimal("1.5"), {1, 2}])
def test_result_not_serializable_is_a_nexq_error_and_a_type_error(value: Any) -> None:
    from nexq import NexqError
    from nexq.queue.acks import encode_result
    from nexq.task import Attempt

    with pytest.raises(ResultNotSerializable) as info:
        encode_result(Attempt(1), value)
    assert isinstance(info.value, NexqError) and isinstance(info.value, TypeError)
