"""The REST API over three store nodes: aggregated listings and stats,
id routing, cursors, and the refusal of a dependency across nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nexq.api import create_app
from nexq.config import Settings
from nexq.queue.cluster import ClusterBroker
from nexq.runtime.runtime import Runtime
from nexq.store import open_stores

NAMES = ["n1:1", "n2:1", "n3:1"]


@pytest.fixture
async def rt() -> AsyncIterator[Runtime]:
    async with open_stores(["memory://"] * 3) as stores:
        yield Runtime.build(Settings(namespace="api"), stores, NAMES)


async def test_api_aggregates_across_nodes(rt: Runtime) -> None:
    client = create_app(rt).test_client()
    assert isinstance(rt.broker, ClusterBroker)
    queues = [f"q{i}" for i in range(9)]
    r = await client.post("/api/tasks/batch", json={"tasks": [
        {"type": "t", "payload": i, "queue": queues[i % 9]} for i in range(45)]})
    assert r.status_code == 201
    ids = {t["id"] for t in await r.get_json()}
    seen, cursor = [], None
    while True:
        r = await client.get("/api/tasks", query_string={"limit": 10, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        page = await r.get_json()
        seen += [t["id"] for t in page["tasks"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    r = await client.get("/api/tasks", query_string={"cursor": "5"})
    assert r.status_code == 400 and (await r.get_json())["error"]["details"]["field"] == "cursor"
    stats = (await (await client.get("/api/queues")).get_json())["queues"]
    assert sum(q["pending"] for q in stats) == 45
    assert {q["name"]: q["nodes"] for q in stats} == {q: [NAMES[rt.broker.node_of(q)]] for q in queues}
    one = sorted(ids)[0]
    r = await client.post(f"/api/tasks/{one}/cancel")
    assert r.status_code == 200 and (await r.get_json())["status"] == "cancelled"
    nodes = (await (await client.get("/api/nodes")).get_json())["nodes"]
    assert [n["name"] for n in nodes] == NAMES and nodes[0]["home"]
    assert sorted(q for n in nodes for q in n["queues"]) == sorted(queues)


async def test_a_dependency_across_nodes_is_a_400_and_writes_nothing(rt: Runtime) -> None:
    client = create_app(rt).test_client()
    assert isinstance(rt.broker, ClusterBroker)
    by_node: dict[int, str] = {}
    for i in range(50):
        by_node.setdefault(rt.broker.node_of(f"x{i}"), f"x{i}")
    parent = await (await client.post("/api/tasks", json={"type": "t", "queue": by_node[0]})).get_json()
    r = await client.post("/api/tasks", json={"type": "t", "queue": by_node[1], "depends_on": [parent["id"]]})
    assert r.status_code == 400
    message = (await r.get_json())["error"]["message"]
    assert NAMES[0] in message and NAMES[1] in message
    listed = (await (await client.get("/api/tasks")).get_json())["tasks"]
    assert [t["id"] for t in listed] == [parent["id"]]
