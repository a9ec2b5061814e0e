"""Cluster routing as plain data: slots, tags, the URL, split/join, redirects.

No server: :class:`Routing` is driven by hand with the replies a cluster
would give (``MOVED``, ``ASK``, ``TRYAGAIN``), as a transport drives it.
"""

from __future__ import annotations

import pytest

from nexq.errors import InvalidStoreURL, StoreUnavailable
from nexq.store.cluster_partition import partition_tags, tagged
from nexq.store.cluster_slots import SLOTS, Routing, SlotMap, crc16, key_slot
from nexq.store.resp_commands import ReplyError
from nexq.store.url import parse_store_url, split_store_urls


def test_key_slots_match_redis_cluster() -> None:
    assert crc16(b"123456789") == 0x31C3  # the XMODEM check value Redis's cluster spec gives
    assert key_slot("foo") == 12182  # CLUSTER KEYSLOT foo
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers") == key_slot("user1000")
    assert key_slot("foo{}{bar}") == crc16(b"foo{}{bar}") % SLOTS  # an empty tag hashes the whole key
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")  # the tag ends at the first }
    assert key_slot(b"{user1000}x") == key_slot("{user1000}y")


@pytest.mark.parametrize("count", [1, 2, 3, 12])
def test_partition_tags_spread_evenly_over_the_slots(count: int) -> None:
    tags = partition_tags(count)
    slots = [key_slot(t + "nexq:t:abc") for t in tags]
    for i, slot in enumerate(slots):
        assert i * SLOTS // count <= slot < (i + 1) * SLOTS // count
    # Every key of one partition is in one slot, whatever the key.
    ops = tagged(tags[0], [("get", ("a",)), ("mget", (("b", "c"),)), ("delete", ("d", "e")),
                           ("set", ("f", b"v", False, False, None, False, False))])
    keys = [ops[0][1][0], *ops[1][1][0], *ops[2][1], ops[3][1][0]]
    assert {key_slot(k) for k in keys} == {slots[0]} and all(k.startswith(tags[0]) for k in keys)


def test_cluster_urls() -> None:
    url = parse_store_url("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2?partitions=6")
    assert url.cluster and not url.tls and url.hosts == (("10.0.0.1", 7000), ("10.0.0.2", 6379))
    assert url.password == "s3cret" and url.partitions == 6
    assert str(url) == "redis+cluster://:***@10.0.0.1:7000,10.0.0.2:6379?partitions=6"
    assert parse_store_url("rediss+cluster://h:1").tls
    assert parse_store_url("redis+cluster://h:1").partitions == 12
    # One URL, not a node list, although it has commas.
    assert len(split_store_urls("redis+cluster://a:1,b:2,c:3")) == 1
    for bad, why in [("redis+cluster://a:1?partitions=0", "partitions=N"),
                     ("redis+cluster://a:1/mymaster", "no path"), ("redis+cluster://a:x", "bad address")]:
        with pytest.raises(InvalidStoreURL, match=why):
            parse_store_url(bad)


def two_nodes() -> SlotMap:
    half = SLOTS // 2
    return SlotMap(["A"] * half + ["B"] * half)


def node_of(key: str) -> str:
    return "A" if key_slot(key) < SLOTS // 2 else "B"


def keys_on(node: str, n: int) -> list[str]:
    return [k for k in (f"k{i}" for i in range(100)) if node_of(k) == node][:n]


def test_a_batch_splits_by_node_and_joins_in_order() -> None:
    a1, a2 = keys_on("A", 2)
    b1, b2 = keys_on("B", 2)
    routing = Routing([("GET", a1), ("MGET", b1, a1, b2, a2), ("DEL", a1, b1, b2), ("INCRBY", b1, 1)], two_nodes())
    sends = routing.round()
    assert set(sends) == {"A", "B"}
    # Split by slot (a multi-key command must not cross slots, even on one node).
    assert routing.commands(sends["A"]) == [("GET", a1), ("MGET", a1), ("MGET", a2), ("DEL", a1)]
    assert routing.commands(sends["B"]) == [("MGET", b1), ("MGET", b2), ("DEL", b1), ("DEL", b2),
                                            ("INCRBY", b1, 1)]
    routing.replied(sends["B"], [[b"b1"], [None], 1, 1, 7])
    assert not routing.done
    routing.replied(sends["A"], [b"a1", [b"a1"], [b"a2"], 1])
    assert routing.done
    assert routing.replies() == [b"a1", [b"b1", b"a1", None, b"a2"], 3, 7]


def test_an_error_in_one_part_stands_for_the_whole_command() -> None:
    a1, b1 = keys_on("A", 1)[0], keys_on("B", 1)[0]
    routing = Routing([("MGET", a1, b1)], two_nodes())
    sends = routing.round()
    routing.replied(sends["A"], [[b"x"]])
    routing.replied(sends["B"], [ReplyError("ERR boom")])
    (reply,) = routing.replies()
    assert isinstance(reply, ReplyError) and str(reply) == "ERR boom"


def test_moved_updates_the_map_and_resends() -> None:
    a1 = keys_on("A", 1)[0]
    slot_map = two_nodes()
    routing = Routing([("SET", a1, b"v")], slot_map)
    routing.replied(routing.round()["A"], [ReplyError(f"MOVED {key_slot(a1)} C:1")])
    assert routing.refresh and not routing.done and slot_map.node_for(key_slot(a1)) == "C:1"
    sends = routing.round()
    assert list(sends) == ["C:1"] and routing.commands(sends["C:1"]) == [("SET", a1, b"v")]
    routing.replied(sends["C:1"], [b"OK"])
    assert routing.replies() == [b"OK"]


def test_ask_sends_asking_once_without_changing_the_map() -> None:
    a1 = keys_on("A", 1)[0]
    slot_map = two_nodes()
    routing = Routing([("GET", a1)], slot_map)
    routing.replied(routing.round()["A"], [ReplyError(f"ASK {key_slot(a1)} B")])
    sends = routing.round()
    assert routing.commands(sends["B"]) == [("ASKING",), ("GET", a1)]
    routing.replied(sends["B"], [b"OK", b"v"])
    assert routing.replies() == [b"v"] and slot_map.node_for(key_slot(a1)) == "A"
    # the next command to that slot goes to the map's node again
    again = Routing([("GET", a1)], slot_map)
    assert again.commands(again.round()["A"]) == [("GET", a1)]


def test_tryagain_and_refused_nodes_retry_after_a_pause_and_redirects_are_bounded() -> None:
    a1 = keys_on("A", 1)[0]
    routing = Routing([("GET", a1)], two_nodes())
    routing.replied(routing.round()["A"], [ReplyError("TRYAGAIN Multiple keys request during rehashing of slot")])
    assert routing.wait and routing.refresh and not routing.done
    routing.unreachable(routing.round()["A"])
    assert routing.wait and not routing.done
    for _ in range(10):  # a ping-pong of redirects ends in the error reply, not a loop
        sends = routing.round()
        (node,) = sends
        routing.replied(sends[node], [ReplyError(f"MOVED {key_slot(a1)} {'B' if node == 'A' else 'A'}")])
        if routing.done:
            break
    assert routing.done and str(routing.replies()[0]).startswith("MOVED")


def test_a_slot_without_a_node_is_unavailable() -> None:
    routing = Routing([("GET", "x")], SlotMap.empty())
    with pytest.raises(StoreUnavailable, match="no cluster node serves slot"):
        routing.round()


def test_wait_follows_each_nodes_commands() -> None:
    a1, b1 = keys_on("A", 1)[0], keys_on("B", 1)[0]
    routing = Routing([("SET", a1, b"1"), ("SET", b1, b"2")], two_nodes(), wait=("WAIT", 1, 100))
    sends = routing.round()
    assert routing.commands(sends["A"]) == [("SET", a1, b"1"), ("WAIT", 1, 100)]
    routing.replied(sends["A"], [b"OK", 1])
    routing.replied(sends["B"], [b"OK", 0])
    assert routing.replies() == [b"OK", b"OK"] and routing.acks == [1, 0]


def test_slot_map_from_cluster_slots() -> None:
    reply = [[0, 99, [b"10.0.0.1", 7000, b"id1"], [b"10.0.0.2", 7001, b"id2"]],
             [100, SLOTS - 1, [b"", 7002, b"id3"]]]
    slot_map = SlotMap.from_slots(reply, "10.0.0.9:7002")
    assert slot_map.node_for(0) == "10.0.0.1:7000" and slot_map.node_for(100) == "10.0.0.9:7002"
    assert slot_map.covered and slot_map.replicas == ["10.0.0.2:7001"]
    with pytest.raises(StoreUnavailable):
        SlotMap.from_slots(b"nonsense", "x:1")

