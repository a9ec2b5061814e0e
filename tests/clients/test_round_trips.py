"""Round trips as redis-server counts them: a lone ``Client.enqueue`` from a
busy producer is one, concurrent ``AsyncClient`` enqueues share theirs, and
a closing client gives its reserved slots back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis
import trio

from nexq import AsyncClient, Client
from nexq.api.routes_tasks import enqueue_one
from nexq.config import Settings
from nexq.runtime.runtime import open_runtime
from nexq.runtime.task_types import TypeDefaults
from tests.clients.test_client import registered_worker

pytestmark = pytest.mark.slow  # a redis-server of its own, so nothing else is counted


def stats(r: redis.Redis, section: str) -> dict[str, Any]:
    return r.info(section)  # type: ignore[no-any-return]


def reads(r: redis.Redis) -> int:
    """Client writes the server has read so far (``INFO`` itself is one)."""
    return int(stats(r, "stats")["total_reads_processed"])


def calls(r: redis.Redis, command: str) -> int:
    return int(stats(r, "commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def pending(client: Client) -> int:
    [q] = client.run(lambda node: node.inspector().queue_stats(["default"]))
    return int(q["pending"])


def test_a_lone_enqueue_is_one_round_trip(own_redis: Any) -> None:
    r = redis.Redis.from_url(own_redis.url, protocol=2)
    with Client(own_redis.url, namespace="rt") as client:
        client.enqueue("noop", 0)  # the first: reads the registry, reserves (and ahead), writes
        before = reads(r)
        for i in range(1, 12):
            client.enqueue("noop", i)
        assert reads(r) - before == 11 + 1  # one write per enqueue from the second on (+ this INFO)
        # The lane holds the one slot reserved ahead; the pending count does not.
        head, tail = (int(v or 0) for v in r.mget(["rt:lane:default:5:head", "rt:lane:default:5:tail"]))
        assert tail - head == 13 and pending(client) == 12
    # Closed: its reserved slot is tombstoned, so no claimer waits for it.
    assert r.get(f"rt:lane:default:5:s:{tail}") == b"~"
    r.close()


def test_an_enqueue_every_second_and_a_half_is_one_round_trip(own_redis: Any) -> None:
    """A web app's pace: the worker registry's re-read (due once a second)
    and the numbers for the next call ride along with each write."""
    r = redis.Redis.from_url(own_redis.url, protocol=2)
    with Client(own_redis.url, namespace="lone") as client:
        client.enqueue("noop", 0)
        trips = []
        for i in range(1, 3):
            time.sleep(1.5)  # past the registry's 1 s refresh, within the reservations' HOLD
            before = reads(r)
            client.enqueue("noop", i)
            trips.append(reads(r) - before - 1)  # (- this INFO)
        assert trips == [1, 1]
        with registered_worker(own_redis.url, "lone", types={"typed": TypeDefaults(queue="reports")}):
            time.sleep(1.5)
            client.enqueue("noop", 3)  # its ride sees a new worker: the next call reads the registry in full
            assert client.enqueue("typed", 4).info().spec.queue == "reports"  # type: ignore[union-attr]
        assert pending(client) == 4
    r.close()


def test_a_rest_enqueue_every_second_and_a_half_is_one_round_trip(own_redis: Any) -> None:
    """``POST /api/tasks``'s core in a runtime with doorbells to ring: the
    types' defaults, the doorbells and the numbers all come from what rode
    along with the previous write."""
    r = redis.Redis.from_url(own_redis.url, protocol=2)

    async def main() -> list[int]:
        async with open_runtime(Settings.load({"store": own_redis.url, "namespace": "rest"})) as rt:
            await enqueue_one(rt, {"type": "noop", "payload": 0})
            trips = []
            for i in range(1, 3):
                await trio.sleep(1.5)
                before = reads(r)
                _, status = await enqueue_one(rt, {"type": "noop", "payload": i})
                trips.append(reads(r) - before - 1)
                assert status == 201
            return trips

    assert trio.run(main) == [1, 1]
    r.close()


def test_concurrent_async_enqueues_share_round_trips(own_redis: Any) -> None:
    r = redis.Redis.from_url(own_redis.url, protocol=2)

    async def main() -> list[str]:
        async with AsyncClient(own_redis.url, namespace="co") as client:
            await client.enqueue("noop", -1)
            before = calls(r, "get")
            handles = await asyncio.gather(*[client.enqueue("noop", i) for i in range(200)])
            # Each write of a lane's slots reads the lane's head once: one GET per group.
            groups = calls(r, "get") - before
            assert groups <= 20, f"{groups} writes for 200 concurrent enqueues"
            return [h.id for h in handles]

    ids = asyncio.run(main())
    assert len(set(ids)) == 200
    with Client(own_redis.url, namespace="co") as client:
        assert pending(client) == 201
        assert {client.get(i).spec.payload for i in ids} == set(range(200))  # type: ignore[union-attr]
    r.close()


@pytest.mark.parametrize("after_passes", [1, 3, 4, 6])
def test_a_cancelled_group_leader_fails_no_member(resp_url: str, prefix: str, after_passes: int) -> None:
    async def main() -> tuple[list[Any], list[BaseException]]:
        async with AsyncClient(resp_url, namespace=prefix.rstrip(":")) as client:
            await client.enqueue("noop", -1)
            calls = [asyncio.create_task(client.enqueue("noop", i)) for i in range(40)]
            for _ in range(after_passes):  # the second call leads the group the others join
                await asyncio.sleep(0)
            calls[1].cancel()  # while its group forms (1, 3) or while it writes it (4, 6)
            done = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
            errors = [h for i, h in enumerate(done) if isinstance(h, BaseException) and i != 1]
            return [await client.get(h.id) for h in done if not isinstance(h, BaseException)], errors

    found, errors = asyncio.run(main())
    assert errors == [] and len(found) == 39  # the next member wrote the group, or the write went on
    assert all(t is not None for t in found)  # each handle's task exists
