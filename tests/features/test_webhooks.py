"""Webhooks: signed POSTs on success / death / failure, retried, recorded, SSRF-safe."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from nexq.app import Nexq
from nexq.config import Settings
from nexq.queue import NodeBroker
from nexq.runtime.runtime import Runtime
from nexq.runtime.scheduler import Scheduler
from nexq.runtime.webhooks import WebhookRefused, check_resolved, check_url, verify
from nexq.runtime.worker import Worker
from nexq.store import Store

SECRET = "hook-secret"


class Receiver:
    """A loopback HTTP server that records POSTs; fails the first ``fail`` ones."""

    def __init__(self, fail: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail = fail
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.requests.append({"headers": dict(self.headers), "body": body})
                code = 500 if len(outer.requests) <= outer.fail else 204
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        # shutdown() waits up to one poll interval (0.5 s by default) for the loop
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def make_runtime(store: Store, prefix: str, **settings: Any) -> Runtime:
    settings.setdefault("webhook_allow_private", True)  # the receiver is on loopback
    settings.setdefault("webhook_secret", SECRET)
    return Runtime.build(Settings(namespace=prefix.rstrip(":"), **settings), store)


async def run_workers(rt: Runtime, app: Nexq, nursery: trio.Nursery) -> None:
    app.bind(rt)
    w = Worker(rt, app, concurrency=4)
    await nursery.start(w.run)
    await nursery.start(Scheduler(rt.broker).run)


async def wait_deliveries(app: Nexq, task_id: str, n: int) -> list[dict[str, Any]]:
    with trio.fail_after(30):
        while len(d := (await app.handle(task_id).info()).webhooks) < n:
            await trio.sleep(0.05)
    return list(d)


async def test_success_is_posted_signed_and_recorded(store: Store, prefix: str, receiver: Receiver) -> None:
    rt = make_runtime(store, prefix)
    app = Nexq()
    app.register_handler("add", lambda p: p["a"] + p["b"])
    async with trio.open_nursery() as n:
        await run_workers(rt, app, n)
        h = await app.enqueue("add", {"a": 1, "b": 2}, webhook=receiver.url)
        assert await h.result(timeout=10) == 3
        [rec] = await wait_deliveries(app, h.id, 1)
        n.cancel_scope.cancel()
    assert rec["ok"] and rec["status"] == 204 and rec["event"] == "succeeded"
    [req] = receiver.requests
    body = json.loads(req["body"])
    assert body["event"] == "succeeded" and body["task"]["id"] == h.id and body["task"]["result"] == 3
    headers = {k.lower(): v for k, v in req["headers"].items()}
    assert verify(SECRET, headers["x-nexq-timestamp"], req["body"], headers["x-nexq-signature"])
    assert not verify("other", headers["x-nexq-timestamp"], req["body"], headers["x-nexq-signature"])


@pytest.mark.slow  # waits out real webhook backoff (base 2 s, jittered): seconds
async def test_failed_deliveries_are_retried_with_backoff(store: Store, prefix: str) -> None:
    rt = make_runtime(store, prefix)
    app = Nexq()
    app.register_handler("noop", lambda p: None)
    with Receiver(fail=2) as receiver:
        async with trio.open_nursery() as n:
            await run_workers(rt, app, n)
            h = await app.enqueue("noop", webhook=receiver.url)
            recs = await wait_deliveries(app, h.id, 3)
            n.cancel_scope.cancel()
    assert [r["ok"] for r in recs] == [False, False, True]
    assert "500" in recs[0]["error"] and [r["attempt"] for r in recs] == [1, 2, 3]


async def test_global_webhook_reports_death_and_each_failure(store: Store, prefix: str, receiver: Receiver) -> None:
    rt = make_runtime(store, prefix, webhook_url=receiver.url, webhook_on_failure=True)
    app = Nexq()

    @app.task("broken", max_retries=1, retry=__import__("nexq").RetryPolicy(base=0.01))
    async def broken(payload: Any) -> None:
        raise RuntimeError("nope")

    async with trio.open_nursery() as n:
        await run_workers(rt, app, n)
        h = await app.enqueue("broken")
        await wait_deliveries(app, h.id, 3)
        n.cancel_scope.cancel()
    events = sorted(json.loads(r["body"])["event"] for r in receiver.requests)
    assert events == ["dead", "failed", "failed"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x", "http://localhost:8080/", "http://10.1.2.3/", "http://192.168.0.10/",
    "http://172.16.5.5/", "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://0.0.0.0/",
    "http://[fe80::1]/", "http://224.0.0.1/", "ftp://example.com/", "not a url",
])
async def test_private_and_bad_targets_are_refused_at_enqueue(url: str) -> None:
    from nexq.store.memory import MemoryStore

    br = NodeBroker(MemoryStore())
    with pytest.raises(ValueError):
        await br.enqueue("t", webhook=url)
    with pytest.raises(WebhookRefused):
        check_url(url)


async def test_public_targets_pass_and_names_are_checked_after_resolving() -> None:
    assert check_url("https://hooks.example.com/x") == "hooks.example.com"
    with pytest.raises(WebhookRefused, match="resolves to 127"):
        await check_resolved("localhost", 80, allow_private=False)
    await check_resolved("localhost", 80, allow_private=True)
