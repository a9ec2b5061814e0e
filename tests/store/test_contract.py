"""The store contract: every behaviour holds on MemoryStore and over RESP.

Runs against redis-server (through the Pogocache allowlist) and, when
``NEXQ_TEST_STORE_URL`` is set, against a real Pogocache.
"""

from __future__ import annotations

import pytest
import trio

from nexq.errors import StoreResponseError
from nexq.store import Batch, Store


async def wait_gone(store: Store, key: str, limit: float = 5.0) -> float:
    """Real seconds until ``key`` disappears (TTLs run on the server's clock)."""
    start = trio.current_time()
    with trio.fail_after(limit):
        while await store.get(key) is not None:
            await trio.sleep(0.01)
    return trio.current_time() - start


async def test_set_then_get_round_trips_bytes_str_and_int(store: Store, prefix: str) -> None:
    assert await store.set(prefix + "a", b"\x00bin\xff") is True
    assert await store.set(prefix + "b", "text") is True
    assert await store.set(prefix + "c", 42) is True
    assert await store.get(prefix + "a") == b"\x00bin\xff"
    assert await store.get(prefix + "b") == b"text"
    assert await store.get(prefix + "c") == b"42"
    assert await store.get(prefix + "missing") is None


async def test_set_nx_first_writer_wins(store: Store, prefix: str) -> None:
    k = prefix + "nx"
    assert await store.set(k, b"first", nx=True) is True
    assert await store.set(k, b"second", nx=True) is False
    assert await store.get(k) == b"first"


async def test_set_xx_only_replaces_existing(store: Store, prefix: str) -> None:
    k = prefix + "xx"
    assert await store.set(k, b"v", xx=True) is False
    assert await store.get(k) is None
    await store.set(k, b"v1")
    assert await store.set(k, b"v2", xx=True) is True
    assert await store.get(k) == b"v2"


async def test_set_get_swaps_and_returns_previous(store: Store, prefix: str) -> None:
    k = prefix + "swap"
    assert await store.set(k, b"one", get=True) is None
    assert await store.set(k, b"two", get=True) == b"one"
    assert await store.get(k) == b"two"


async def test_set_xx_get_on_missing_key_stores_nothing(store: Store, prefix: str) -> None:
    k = prefix + "xxget"
    assert await store.set(k, b"v", xx=True, get=True) is None
    assert await store.get(k) is None


async def test_set_nx_with_get_is_refused_client_side(store: Store, prefix: str) -> None:
    with pytest.raises(ValueError, match="nx"):
        await store.set(prefix + "k", b"v", nx=True, get=True)
    with pytest.raises(ValueError):
        await store.set(prefix + "k", b"v", px=0)


async def test_px_expires_the_key(store: Store, prefix: str) -> None:
    k = prefix + "ttl"
    await store.set(k, b"v", px=150)
    ttl = await store.pttl(k)
    assert 0 < ttl <= 150
    await wait_gone(store, k)
    assert await store.pttl(k) == -2


async def test_plain_set_clears_ttl_and_keepttl_keeps_it(store: Store, prefix: str) -> None:
    k = prefix + "keep"
    await store.set(k, b"v", px=60_000)
    await store.set(k, b"w", keepttl=True)
    assert 0 < await store.pttl(k) <= 60_000
    assert await store.get(k) == b"w"
    await store.set(k, b"x")
    assert await store.pttl(k) == -1


async def test_set_xx_px_renews_a_lease_only_while_it_exists(store: Store, prefix: str) -> None:
    k = prefix + "lease"
    assert await store.set(k, b"w1", xx=True, px=5000) is False
    await store.set(k, b"w1", px=100)
    assert await store.set(k, b"w1", xx=True, px=60_000) is True
    assert await store.pttl(k) > 1000


async def test_mget_returns_none_for_missing_keys_in_order(store: Store, prefix: str) -> None:
    await store.set(prefix + "1", b"a")
    await store.set(prefix + "3", b"c")
    got = await store.mget([prefix + "1", prefix + "2", prefix + "3"])
    assert got == [b"a", None, b"c"]
    assert await store.mget([]) == []


async def test_delete_counts_existing_keys(store: Store, prefix: str) -> None:
    await store.set(prefix + "d1", b"1")
    await store.set(prefix + "d2", b"2")
    assert await store.delete(prefix + "d1", prefix + "d2", prefix + "d3") == 2
    assert await store.exists(prefix + "d1", prefix + "d2") == 0


async def test_incr_counts_from_zero_and_incrby_reserves_ranges(store: Store, prefix: str) -> None:
    k = prefix + "n"
    assert await store.incr(k) == 1
    assert await store.incrby(k, 100) == 101
    assert await store.incrby(k, -1) == 100
    assert await store.get(k) == b"100"


async def test_incr_on_text_is_an_error_and_changes_nothing(store: Store, prefix: str) -> None:
    k = prefix + "txt"
    await store.set(k, b"hello")
    with pytest.raises(StoreResponseError):
        await store.incr(k)
    assert await store.get(k) == b"hello"


async def test_incr_keeps_the_ttl(store: Store, prefix: str) -> None:
    k = prefix + "cnt"
    await store.incr(k)
    assert await store.expire(k, 60) is True
    await store.incr(k)
    assert 0 < await store.pttl(k) <= 60_000


async def test_append_builds_a_list_and_handles_megabytes(store: Store, prefix: str) -> None:
    k = prefix + "list"
    assert await store.append(k, b"a,") == 2
    assert await store.append(k, "b,") == 4
    assert await store.get(k) == b"a,b,"
    big = prefix + "big"
    chunk = b"x" * 300_000
    for _ in range(4):
        await store.append(big, chunk)
    assert await store.get(big) == chunk * 4


async def test_expire_whole_seconds_and_pttl_states(store: Store, prefix: str) -> None:
    k = prefix + "e"
    assert await store.expire(k, 10) is False
    await store.set(k, b"v")
    assert await store.pttl(k) == -1
    assert await store.expire(k, 10) is True
    assert 9_000 < await store.pttl(k) <= 10_000


async def test_batch_answers_in_order(store: Store, prefix: str) -> None:
    b = Batch()
    b.set(prefix + "x", b"1").incr(prefix + "y").get(prefix + "x").mget([prefix + "x", prefix + "y"])
    b.set(prefix + "x", b"2", get=True).exists(prefix + "x", prefix + "none").delete(prefix + "y")
    assert await store.execute(b) == [True, 1, b"1", [b"1", b"1"], b"1", 1, 1]


async def test_batch_runs_every_op_then_raises_the_first_error(store: Store, prefix: str) -> None:
    await store.set(prefix + "t", b"text")
    b = Batch().incr(prefix + "t").set(prefix + "after", b"ran")
    with pytest.raises(StoreResponseError):
        await store.execute(b)
    assert await store.get(prefix + "after") == b"ran"


async def test_large_batch_in_one_call(store: Store, prefix: str) -> None:
    b = Batch()
    for i in range(5000):
        b.set(f"{prefix}k{i}", str(i))
    assert (await store.execute(b)) == [True] * 5000
    got = await store.mget([f"{prefix}k{i}" for i in range(5000)])
    assert got == [str(i).encode() for i in range(5000)]


async def test_thousand_concurrent_tasks_each_get_their_own_reply(store: Store, prefix: str) -> None:
    seen: dict[int, bytes | None] = {}

    async def one(i: int) -> None:
        await store.set(f"{prefix}c{i}", f"v{i}")
        seen[i] = await store.get(f"{prefix}c{i}")

    async with trio.open_nursery() as nursery:
        for i in range(1000):
            nursery.start_soon(one, i)
    assert seen == {i: f"v{i}".encode() for i in range(1000)}


async def test_incr_hands_out_unique_numbers_under_concurrency(store: Store, prefix: str) -> None:
    got: list[int] = []

    async def take() -> None:
        for _ in range(50):
            got.append(await store.incr(prefix + "seq"))

    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(take)
    assert sorted(got) == list(range(1, 1001))


async def test_ping_measures_a_round_trip(store: Store) -> None:
    rtt = await store.ping()
    assert 0 <= rtt < 5
