"""Fixtures for the client tests: a namespace per test on the session's
redis-server, and a real trio worker serving it from a thread of this
process (the clients are what runs in the test's own thread)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio

from nexq.app import Nexq
from nexq.config import Settings
from nexq.runtime.runtime import open_runtime
from nexq.runtime.worker import Worker




@pytest.fixture
def ns(prefix: str) -> str:
    return prefix.rstrip(":")


@contextmanager
def trio_worker(app: Nexq, url: str, namespace: str, **options: Any) -> Iterator[Worker]:
    """A Worker for ``app``'s handlers on ``url`` / ``namespace``, run by
    trio in a thread until the block ends (it drains, then deregisters)."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        settings = Settings(store=url, namespace=namespace)
        async with open_runtime(settings, app) as rt:
            worker = Worker(rt, app, **options)
            async with trio.open_nursery() as nursery:
                await nursery.start(worker.run)
                box["worker"], box["token"] = worker, trio.lowlevel.current_trio_token()
                ready.set()

    def main() -> None:
        try:
            trio.run(serve)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(30), "the worker did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield box["worker"]
    finally:
        trio.from_thread.run_sync(box["worker"].stop, trio_token=box["token"])
        thread.join(30)
        assert not thread.is_alive(), "the worker did not stop"
