"""Fixtures for the API tests: a Runtime on the parametrised store, its app
and the Quart test client; helpers that drive tasks into given states
through the real broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client
from quart_trio import QuartTrio

from nexq.api import create_app
from nexq.config import Settings
from nexq.queue import LaneReader
from nexq.runtime.runtime import Runtime
from nexq.store import Store


@pytest.fixture
def make_runtime(store: Store, prefix: str) -> Callable[..., Runtime]:
    """Runtimes on the parametrised store, isolated by this test's prefix."""

    def make(**settings: Any) -> Runtime:
        return Runtime.build(Settings(namespace=prefix.rstrip(":"), **settings), store)

    return make


@pytest.fixture
def runtime(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime()


@pytest.fixture
def app(runtime: Runtime) -> QuartTrio:
    return create_app(runtime)


@pytest.fixture
def client(app: QuartTrio) -> Client:
    return app.test_client()


async def run_to_end(rt: Runtime, *, fail: bool, queue: str = "default") -> list[str]:
    """Claim every ready task of ``queue`` and ack or fail it (as a worker
    would); returns the claimed ids. With max_retries=0 a failure is dead."""
    claimed = await rt.broker.claim([queue], 1000, "test-worker", LaneReader(rt.store, rt.broker.keys))
    for c in claimed:
        if fail:
            await rt.broker.fail(c, RuntimeError("boom"))
        else:
            await rt.broker.ack(c, {"ok": True})
    return [c.spec.id for c in claimed]


def worker_facts(worker_id: str, last_heartbeat: float, *, heartbeat_interval: float = 5.0,
                 running_in: tuple[str, ...] = ()) -> dict[str, Any]:
    """Registry facts of the shape Worker.info() publishes; one running
    attempt per entry of ``running_in`` (its queue)."""
    return {
        "id": worker_id, "host": "test", "pid": 1, "queues": sorted(set(running_in)) or ["default"],
        "concurrency": 10, "started_at": last_heartbeat, "last_heartbeat": last_heartbeat,
        "heartbeat_interval": heartbeat_interval,
        "running": [{"id": f"{worker_id}-{i}", "type": "t", "queue": q, "attempt": 1,
                     "started_at": last_heartbeat, "node": "node0"} for i, q in enumerate(running_in)],
        "processed": 0, "failed": 0, "stopping": False, "wake": None,
    }


def error_of(body: Any) -> dict[str, Any]:
    """The error object of an error body, asserting the documented shape."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "details"}, err
    assert isinstance(err["code"], str) and isinstance(err["message"], str)
    return err  # type: ignore[no-any-return]
