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
from typing import Any

import pytest

from nexq.queue import NodeBroker
from nexq.store import Store, open_store
from tests.servers import redis_server

EXTERNAL_URL = os.environ.get("NEXQ_TEST_STORE_URL")

# With NEXQ_TEST_STORE_URL=redis+cluster://... (a cluster started by hand):
# tests written against one plain server's keys, skipped with the reason.
# A cluster URL is 12 partitions whose keys carry their own hash tags
# (docs/scaling.md), so a test reading or writing raw keys by prefix, or
# through open_store (the home partition) for a queue placed elsewhere,
# cannot see what it expects; the behaviour itself is covered on a cluster
# by tests/store/test_cluster.py and tests/reliability/test_cluster_failover.py.
_RAW_KEYS = "reads or writes one plain server's raw keys (a cluster's keys carry partition hash tags)"
CLUSTER_SKIPS = {
    "tests/store/test_resp.py::test_kind_and_info": "checks RespStore itself; a cluster URL opens a partition of a ClusterStore",
    "tests/cli/test_commands.py::test_enqueue_options_reach_the_task":
        "depends_on across queues on different partitions is refused on a cluster, as on the node ring",
    "tests/clients/test_client.py::test_a_unique_key_held_by_a_dead_producer_is_waited_out_then_taken":
        "plants the key holder through open_store (the home partition); the queue lives on another partition",
    "tests/clients/test_client.py::test_workers_doorbells_ring_on_push_and_on_cancel":
        "claims through open_store (the home partition) a queue placed on another partition",
    "tests/clients/test_otel.py::test_without_a_tracer_provider_tasks_carry_nothing":
        "reads the spec on broker.nodes[0]; the task's queue is placed on another partition",
    "tests/queue/test_enqueue_reservations.py::test_a_closing_runtime_gives_its_reserved_slots_back":
        "reads the queue's lane through open_store (the home partition); the queue is placed on another partition",
    "tests/queue/test_processes.py::test_two_producers_eight_claimers_ten_thousand_tasks":
        "opens the store with redis-py's from_url, which has no cluster scheme",
    "tests/reliability/test_store_loss.py::test_tasks_survive_a_store_that_forgets_writes": _RAW_KEYS,
    "tests/reliability/test_store_loss.py::test_a_task_whose_index_entry_and_lane_slot_were_lost_ends_once_looked_up":
        _RAW_KEYS,
    "tests/reliability/test_worker_faults.py::test_random_sigkill_every_two_seconds_loses_nothing":
        "calls a node Inspector's private _load; a cluster URL gives the partitions' ClusterInspector",
}


class HomePartitionChecker:
    """redis-py on a cluster, seeing the keys as ``open_store(url)`` (the
    home partition) names them: its hash tag added to every key given,
    removed from every key listed."""

    def __init__(self, url: str) -> None:
        from redis.cluster import RedisCluster

        from nexq.store.cluster_partition import partition_tags
        from nexq.store.url import parse_store_url

        parsed = parse_store_url(url)
        self.tag = partition_tags(parsed.partitions)[0]
        self.client = RedisCluster(host=parsed.host, port=parsed.port, password=parsed.password, protocol=2)

    def _k(self, key: str | bytes) -> str:
        return self.tag + (key.decode() if isinstance(key, bytes) else key)

    def get(self, key: str) -> Any:
        return self.client.get(self._k(key))

    def set(self, key: str, value: Any, **kw: Any) -> Any:
        return self.client.set(self._k(key), value, **kw)

    def delete(self, *keys: str) -> int:
        return sum(self.client.delete(self._k(k)) for k in keys)

    def ttl(self, key: str) -> Any:
        return self.client.ttl(self._k(key))

    def rpush(self, key: str, *values: Any) -> Any:
        return self.client.rpush(self._k(key), *values)

    def object(self, what: str, key: str) -> Any:
        return self.client.object(what, self._k(key))

    def scan_iter(self, match: str = "*", count: int | None = None) -> Iterator[bytes]:
        n = len(self.tag)
        for key in self.client.scan_iter(match=self._k(match), count=count, target_nodes=RedisClusterAll):
            yield key[n:]

    def keys(self, pattern: str = "*") -> list[bytes]:
        return list(self.scan_iter(pattern))

    def close(self) -> None:
        self.client.close()


RedisClusterAll = "all"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if EXTERNAL_URL and "+cluster://" in EXTERNAL_URL:
        for item in items:
            reason = CLUSTER_SKIPS.get(item.nodeid.split("[")[0])
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"on a cluster URL: {reason}"))


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

    if "+cluster://" in resp_url:  # NEXQ_TEST_STORE_URL=redis+cluster://h1:p1,...
        client = HomePartitionChecker(resp_url)
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
