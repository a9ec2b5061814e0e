"""Consistent hashing: placement agreed by everyone, minimal moves, even spread."""

from __future__ import annotations

import random

import pytest

from nexq.errors import InvalidStoreURL
from nexq.queue.ring import Ring
from nexq.store.url import split_store_urls

QUEUES = [f"queue-{i}" for i in range(3000)]


def test_placement_ignores_the_order_nodes_are_listed_in() -> None:
    a = Ring(["10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"])
    b = Ring(["10.0.0.3:6379", "10.0.0.1:6379", "10.0.0.2:6379"])
    assert all(a.node_for(q) == b.node_for(q) for q in QUEUES)


def test_adding_a_node_moves_only_queues_onto_it() -> None:
    old = Ring(["a:1", "b:1", "c:1"])
    new = Ring(["a:1", "b:1", "c:1", "d:1"])
    moves = old.moves(new, QUEUES)
    assert moves, "some queues must move to the new node"
    assert all(there == "d:1" for _, there in moves.values())
    # about a quarter moves: consistent hashing, not a reshuffle
    assert 0.15 < len(moves) / len(QUEUES) < 0.35


def test_queues_spread_evenly_enough() -> None:
    ring = Ring([f"n{i}:9401" for i in range(3)])
    counts: dict[str, int] = {}
    for q in QUEUES:
        counts[ring.node_for(q)] = counts.get(ring.node_for(q), 0) + 1
    assert len(counts) == 3
    assert all(700 < c < 1300 for c in counts.values()), counts


def test_one_node_takes_everything_and_random_names_are_stable() -> None:
    ring = Ring(["only:1"])
    assert {ring.node_for(q) for q in QUEUES} == {"only:1"}
    name = "".join(random.choice("abc") for _ in range(20))
    assert Ring(["x:1", "y:1"]).node_for(name) == Ring(["y:1", "x:1"]).node_for(name)


def test_store_lists_are_checked() -> None:
    nodes = split_store_urls("redis://a:6379, pogocache://:pw@b")
    assert [n.node_name for n in nodes] == ["a:6379", "b:9401"]
    with pytest.raises(InvalidStoreURL, match="more than once"):
        split_store_urls("redis://a:6379,pogocache://a:6379")
    with pytest.raises(InvalidStoreURL, match="memory://"):
        split_store_urls("redis://a:6379,memory://")
    with pytest.raises(InvalidStoreURL, match="empty entry"):
        split_store_urls("redis://a:6379,,redis://b:6379")
    with pytest.raises(InvalidStoreURL, match="scheme"):
        split_store_urls("redis://a:6379,b:6379")
    with pytest.raises(ValueError, match="distinct"):
        Ring(["a:1", "a:1"])
