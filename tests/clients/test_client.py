"""nexq.Client: the blocking producer, on the session's redis-server."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio

from nexq import Client, Nexq, StoreFull, StoreUnavailable, TaskFailed, TaskNotFound
from nexq.errors import InvalidStoreURL, NexqError
from nexq.keys import Keys
from nexq.queue.lanes import Pushed
from nexq.queue import LaneReader, NodeBroker
from nexq.runtime.registry import WorkerRegistry
from nexq.runtime.task_types import TypeDefaults, publication
from nexq.store import open_store
from nexq.task import Status
from tests.clients.conftest import trio_worker
from tests.polling import poll


@contextmanager
def registered_worker(url: str, ns: str, types: dict[str, TypeDefaults] | None = None,
                      wake: tuple[str, int] | None = None, worker_id: str = "w-test") -> Iterator[None]:
    """A worker's registry entry (its published types, its doorbell
    address), written as a live worker writes it; removed after the block."""

    async def register(deregister: bool) -> None:
        async with open_store(url) as store:
            reg = WorkerRegistry(store, Keys(ns), publication=lambda: publication(types or {}, []))
            if deregister:
                reg.slot = 0
                await reg.deregister(worker_id)
            else:
                await reg.register({"id": worker_id, "wake": list(wake) if wake else None})

    trio.run(register, False)
    try:
        yield
    finally:
        trio.run(register, True)


def test_enqueue_status_cancel_and_the_result_of_a_cancelled_task(resp_url: str, ns: str) -> None:
    with Client(resp_url, namespace=ns) as client:
        h = client.enqueue("send_email", {"to": "a@example.com"}, delay=5, priority="high")
        assert h.created and h.status() is Status.SCHEDULED
        task = h.info()
        assert (task.type, task.spec.priority, task.spec.payload) == ("send_email", 9, {"to": "a@example.com"})
        assert h.cancel() is True and h.status() is Status.CANCELLED
        assert h.cancel() is False  # it already ended
        with pytest.raises(TaskFailed, match="cancelled"):
            h.result(timeout=5)
        pending = client.enqueue("later")
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="pending"):
            pending.result(timeout=0.3)
        assert 0.3 <= time.monotonic() - start < 2


def test_enqueue_many_get_and_unknown_tasks(resp_url: str, ns: str) -> None:
    with Client(resp_url, namespace=ns) as client:
        handles = client.enqueue_many([("resize", {"id": i}) for i in range(1000)] + [("x", 1, {"queue": "q2"})])
        assert len({h.id for h in handles}) == 1001
        got = client.get(handles[500].id)
        assert got is not None and got.spec.payload == {"id": 500} and got.status is Status.PENDING
        assert client.get(handles[-1].id).spec.queue == "q2"  # type: ignore[union-attr]
        assert client.get("no-such-task") is None
        with pytest.raises(TaskNotFound):
            client.handle("no-such-task").status()
        stats = client.run(lambda node: node.inspector().queue_stats(["default"]))
        assert stats[0]["pending"] == 1000


def test_result_comes_from_a_worker(resp_url: str, ns: str) -> None:
    app = Nexq(resp_url, namespace=ns)

    @app.task("double")
    async def double(payload: int) -> int:
        return payload * 2

    @app.task("boom", max_retries=0)
    async def boom(payload: Any) -> None:
        raise RuntimeError("it broke")

    with trio_worker(app, resp_url, ns):
        client = app.client()
        assert client.enqueue("double", 21).result(timeout=30) == 42
        assert double.enqueue(5).result(timeout=30) == 10  # TaskDef.enqueue: the app's client
        with pytest.raises(TaskFailed, match="RuntimeError: it broke"):
            boom.enqueue().result(timeout=30)
    assert app.client() is client  # built once, shared


def test_defaults_come_from_the_app_else_the_live_workers_as_on_rest(resp_url: str, ns: str) -> None:
    app = Nexq(resp_url, namespace=ns)

    @app.task("mine", queue="mail", priority="high", max_retries=1, timeout=9)
    def mine(payload: Any) -> None: ...

    h = mine.enqueue(None)
    assert (h.info().spec.queue, h.info().spec.priority, h.info().spec.max_retries) == ("mail", 9, 1)
    assert mine.enqueue(None, queue="other", max_retries=4).info().spec.queue == "other"  # the caller wins

    typed = {"theirs": TypeDefaults(queue="reports", priority=2, max_retries=0, timeout=12)}
    with registered_worker(resp_url, ns, typed), Client(resp_url, namespace=ns) as client:
        spec = client.enqueue("theirs").info().spec
        assert (spec.queue, spec.priority, spec.max_retries, spec.timeout) == ("reports", 2, 0, 12)
        rest = trio.run(rest_post, resp_url, ns, {"type": "theirs"})
        assert (rest["queue"], rest["priority"], rest["max_retries"], rest["timeout"]) == ("reports", 2, 0, 12)


async def rest_post(url: str, ns: str, body: dict[str, Any]) -> Any:
    """POST /api/tasks on a server (without the app) over ``url``: its status and JSON."""
    from nexq.api import create_app
    from nexq.config import Settings
    from nexq.runtime.runtime import Runtime

    async with open_store(url) as store:
        api = create_app(Runtime.build(Settings(store=url, namespace=ns), store)).test_client()
        response = await api.post("/api/tasks", json=body)
        return {"status": response.status_code, **(await response.get_json())}


# (REST body, the same as Python options, the field REST names)
BAD = [
    ({"priority": "urgent"}, {"priority": "urgent"}, "priority"),
    ({"max_retries": -1}, {"max_retries": -1}, "max_retries"),
    ({"timeout": 0}, {"timeout": 0}, "timeout"),
    ({"schedule_in": -5}, {"delay": -5}, "schedule_in"),
    ({"queue": ""}, {"queue": ""}, "queue"),
    ({"expires_in": 0}, {"expires_in": 0}, "expires_in"),
    ({"webhook": "ftp://x"}, {"webhook": "ftp://x"}, "webhook"),
    ({"depends_on": ["nope"]}, {"depends_on": ["nope"]}, "depends_on"),
]


@pytest.mark.parametrize(("body", "options", "field"), BAD, ids=[b[2] + str(i) for i, b in enumerate(BAD)])
def test_bad_requests_fail_as_on_rest_and_app_enqueue(resp_url: str, ns: str, body: dict[str, Any],
                                                      options: dict[str, Any], field: str) -> None:
    rest = trio.run(rest_post, resp_url, ns, {"type": "t", **body})
    assert rest["status"] == 400 and rest["error"]["details"]["field"] == field
    app = Nexq(resp_url, namespace=ns)

    async def via_app() -> str:
        async with app.connect():
            with pytest.raises(ValueError) as caught:
                await app.enqueue("t", None, **options)
            return str(caught.value)

    with Client(resp_url, namespace=ns) as client:
        with pytest.raises(ValueError) as caught:
            client.enqueue("t", None, **options)
        assert str(caught.value) == trio.run(via_app)  # the same check, the same words
        assert str(caught.value).startswith(field if field != "schedule_in" else "delay")  # names it
        assert client.run(lambda node: node.inspector().list()).tasks == []  # nothing written
        with pytest.raises(ValueError, match="unknown option 'bogus'"):
            client.enqueue("t", bogus=1)


def test_store_full_refuses_the_whole_call(resp_url: str, ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXQ_STORE_MEMORY_LIMIT", "200K")
    with Client(resp_url, namespace=ns) as client:
        accepted = 0
        with pytest.raises(StoreFull, match="store-memory-limit"):
            for _ in range(1000):
                client.enqueue("big", "x" * 4000)
                accepted += 1
        assert 10 < accepted < 200
        listed = len(client.run(lambda node: node.inspector().list(limit=1000)).tasks)
        assert listed == accepted  # the refused call wrote nothing


def test_many_threads_share_one_client(resp_url: str, ns: str) -> None:
    client = Client(resp_url, namespace=ns, pool_size=4)
    ids: list[list[str]] = [[] for _ in range(16)]
    errors: list[BaseException] = []

    def produce(n: int) -> None:
        try:
            for i in range(100):
                h = client.enqueue("t", {"thread": n, "i": i}, queue=f"q{n % 4}")
                ids[n].append(h.id)
                if i % 10 == 0:
                    assert h.status() is Status.PENDING
                    assert client.get(h.id).spec.payload == {"thread": n, "i": i}  # type: ignore[union-attr]
                if i % 25 == 0:
                    assert h.cancel()
        except BaseException as exc:  # noqa: BLE001 - the test asserts there were none
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    every = [i for per in ids for i in per]
    assert len(set(every)) == 1600
    tasks = client.run(lambda node: node.inspector().get_many(every))
    statuses = [t.status for t in tasks if t is not None]
    assert statuses.count(Status.PENDING) == 1600 - 16 * 4 and statuses.count(Status.CANCELLED) == 16 * 4
    client.close()


def test_store_unavailable_when_the_server_is_gone_or_frozen(own_redis: Any, ns: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXQ_STORE_TIMEOUT", "0.5")
    client = Client(own_redis.url, namespace=ns)
    h = client.enqueue("t")
    own_redis.proc.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match="no reply within 0.5 s"):
            client.enqueue("t")
        assert time.monotonic() - start < 2
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
    assert h.status() is Status.PENDING  # a fresh connection; the broken one was dropped
    own_redis.stop()
    with pytest.raises(StoreUnavailable):
        client.enqueue("t")
    with pytest.raises(StoreUnavailable):
        h.status()
    own_redis.start()  # the same port: the client reconnects once its backoff allows

    def works() -> bool:
        try:
            return client.enqueue("t").created
        except StoreUnavailable:
            return False

    assert poll(works)


def test_workers_doorbells_ring_on_push_and_on_cancel(resp_url: str, ns: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bell:
        bell.bind(("127.0.0.1", 0))
        bell.settimeout(5)
        with registered_worker(resp_url, ns, wake=bell.getsockname(), worker_id="w-bell"), \
                Client(resp_url, namespace=ns) as client:
            h = client.enqueue("t")
            ring = bell.recv(1024)  # work was pushed: claim now, this attempt
            assert ring[:1] == b"!" and Pushed.decode(ring[1:]) == Pushed("default", 5, 1, h.id, 1)
            claimed = trio.run(claim_as, resp_url, ns, "w-bell")
            assert claimed == [h.id]
            assert h.status() is Status.RUNNING
            assert client.cancel(h.id)
            assert bell.recv(16) == b"c"  # the running attempt was decided here: check it now


async def claim_as(url: str, ns: str, worker: str) -> list[str]:
    async with open_store(url) as store:
        broker = NodeBroker(store, namespace=ns)
        got = await broker.claim(["default"], 10, worker, LaneReader(store, broker.keys))
        return [c.spec.id for c in got]


def test_app_enqueue_outside_trio_says_what_to_use(resp_url: str, ns: str) -> None:
    app = Nexq(resp_url, namespace=ns)
    with pytest.raises(NexqError, match=r"from sync code use app\.client\(\)\.enqueue"):
        app.enqueue("t", {"x": 1})  # type: ignore[unused-coroutine]  # was: never run
    with pytest.raises(NexqError, match=r"app\.enqueue_many\(\) is a coroutine for trio"):
        app.enqueue_many([("t", 1)])  # type: ignore[unused-coroutine]

    async def under_trio() -> str:
        async with app.connect():
            return (await app.enqueue("t", 1)).id

    assert app.client().get(trio.run(under_trio)) is not None  # trio code is unchanged


def test_a_client_needs_one_shared_store(ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEXQ_STORE", raising=False)
    with pytest.raises(InvalidStoreURL, match="embedded store, inside one process"):
        Client("memory://")
    with pytest.raises(InvalidStoreURL, match="no store given"):
        Client()
    with pytest.raises(InvalidStoreURL, match="cluster nodes"):
        Client("redis://127.0.0.1:1,redis://127.0.0.1:2")
    with pytest.raises(InvalidStoreURL, match="embedded"):
        Nexq("memory://").client()
    monkeypatch.setenv("NEXQ_STORE", "redis://127.0.0.1:1")
    assert "127.0.0.1:1" in repr(Client(namespace=ns))  # Client() from NEXQ_*


def test_a_unique_key_held_by_a_dead_producer_is_waited_out_then_taken(resp_url: str, ns: str,
                                                                       checker: Any) -> None:
    # The holder's task never appeared (its producer died between its two
    # round trips): the enqueue waits (the planned store's Sleep, performed
    # by each driver) until UNIQUE_GRACE has passed since the claim, then
    # takes the key over.
    from nexq.queue.producer import UNIQUE_GRACE

    for n, enqueue in enumerate((sync_enqueue, async_enqueue)):
        key = Keys(ns).unique(f"report-{n}")
        checker.set(key, f"ghost|{time.time() - UNIQUE_GRACE + 0.3:.3f}")
        start = time.monotonic()
        task_id, created = enqueue(resp_url, ns, f"report-{n}")
        assert created and task_id != "ghost"
        assert 0.2 <= time.monotonic() - start < 3
        assert checker.get(key).decode().split("|")[0] == task_id
        assert enqueue(resp_url, ns, f"report-{n}") == (task_id, False)  # now held by a live task


def sync_enqueue(url: str, ns: str, unique_key: str) -> tuple[str, bool]:
    with Client(url, namespace=ns) as client:
        h = client.enqueue("report", unique_key=unique_key)
        return h.id, h.created


def async_enqueue(url: str, ns: str, unique_key: str) -> tuple[str, bool]:
    import asyncio

    from nexq import AsyncClient

    async def main() -> tuple[str, bool]:
        async with AsyncClient(url, namespace=ns) as client:
            h = await client.enqueue("report", unique_key=unique_key)
            return h.id, h.created

    return asyncio.run(main())
