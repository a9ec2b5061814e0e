"""The operator routes over three store nodes: search, bulk actions and
per-type figures see every node; a queue paused in advance is listed once,
on its ring node."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nexq.api import create_app
from nexq.config import Settings
from nexq.queue.cluster import ClusterBroker
from nexq.runtime.runtime import Runtime
from nexq.store import open_stores

from .test_cluster_api import NAMES


@pytest.fixture
async def rt() -> AsyncIterator[Runtime]:
    async with open_stores(["memory://"] * 3) as stores:
        yield Runtime.build(Settings(namespace="ops"), stores, NAMES)


async def test_search_bulk_and_type_figures_span_every_node(rt: Runtime) -> None:
    client = create_app(rt).test_client()
    assert isinstance(rt.broker, ClusterBroker)
    queues = [f"q{i}" for i in range(9)]
    assert len({rt.broker.node_of(q) for q in queues}) == 3
    r = await client.post("/api/tasks/batch", json={"tasks": [
        {"type": "mail" if i % 3 else "img", "payload": {"n": f"needle-{i}" if i % 2 else i},
         "queue": queues[i % 9]} for i in range(36)]})
    assert r.status_code == 201
    found, cursor = [], None
    while True:
        query = {"search": "NEEDLE", "limit": 5, **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/tasks", query_string=query)).get_json()
        found += page["tasks"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(t["payload"]["n"] for t in found) == sorted(f"needle-{i}" for i in range(1, 36, 2))
    r = await client.post("/api/tasks/bulk", json={"action": "cancel", "filter": {"search": "needle"}})
    out = await r.get_json()
    assert (out["matched"], out["done"], out["next_cursor"]) == (18, 18, None)
    stats = await (await client.get("/api/types/stats")).get_json()
    counts = {t["type"]: (t["count"], t["statuses"]) for t in stats["types"]}
    assert counts["mail"][0] == 24 and counts["img"][0] == 12
    assert sum(t["statuses"].get("cancelled", 0) for t in stats["types"]) == 18


async def test_a_queue_paused_in_advance_is_listed_on_its_ring_node_only(rt: Runtime) -> None:
    client = create_app(rt).test_client()
    assert isinstance(rt.broker, ClusterBroker)
    r = await client.post("/api/queues/later/pause")
    assert r.status_code == 200
    held = await rt.broker.held(fresh=True)
    assert [("later" in h) for h in held] == [i == rt.broker.node_of("later") for i in range(3)]
    queues = (await (await client.get("/api/queues")).get_json())["queues"]
    assert [(q["name"], q["paused"], q["nodes"]) for q in queues] == [
        ("later", True, [NAMES[rt.broker.node_of("later")]])]
