"""Shared fixtures: a RESP server per session, stores per test, key prefixes.

The RESP server is the one at ``NEXQ_TEST_STORE_URL`` when set (a real
Pogocache), otherwise a ``redis-server`` started on a free port. With
``CI=true`` a missing ``redis-server`` fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from nexq.queue import NodeBroker
from nexq.store import Store, open_store
from tests.servers import redis_server

EXTERNAL_URL = os.environ.get("NEXQ_TEST_STORE_URL")


def _require_redis_server() -> None:
    if shutil.which("redis-server") is None and not os.path.exists("/usr/bin/redis-server"):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("redis-server is required in CI (make test installs it)")
        pytest.skip("redis-server not installed; run `make test` to install it")


@pytest.fixture(scope="session")
def resp_url() -> Iterator[str]:
    """URL of the RESP server shared by the session's tests."""
    if EXTERNAL_URL:
        yield EXTERNAL_URL
        return
    _require_redis_server()
    with redis_server() as server:
        yield server.url


@pytest.fixture
def own_redis() -> Iterator[object]:
    """A redis-server owned by this test alone (it may stop or kill it)."""
    _require_redis_server()
    with redis_server() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    """A key prefix unique to this test: tests isolate by prefix, never flush."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture(params=["memory", "resp"])
async def store(request: pytest.FixtureRequest, resp_url: str) -> AsyncIterator[Store]:
    """Each contract test runs once on the embedded store and once over RESP."""
    url = "memory://" if request.param == "memory" else resp_url
    async with open_store(url) as s:
        yield s


@pytest.fixture
def checker(resp_url: str):  # type: ignore[no-untyped-def]
    """redis-py's sync client (RESP2): an independent view of the server."""
    import redis

    if "+cluster://" in resp_url:  # NEXQ_TEST_STORE_URL=redis+cluster://h1:p1,...: the cluster's view
        from redis.cluster import RedisCluster

        host, port = resp_url.split("://", 1)[1].split(",")[0].rsplit("@", 1)[-1].split(":")
        client = RedisCluster(host=host, port=int(port), protocol=2)
    else:
        client = redis.Redis.from_url(resp_url, protocol=2)
    yield client
    client.close()


@pytest.fixture
def make_broker(store: Store, prefix: str) -> Callable[..., NodeBroker]:
    """Brokers on the parametrised store, isolated by this test's prefix."""

    def make(**options: object) -> NodeBroker:
        options.setdefault("bucket_ms", 50)
        return NodeBroker(store, namespace=prefix.rstrip(":"), **options)  # type: ignore[arg-type]

    return make
