"""/api/tasks over the Quart test client, on MemoryStore and RESP."""

from __future__ import annotations

import time
from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

from nexq.runtime.runtime import Runtime

from .conftest import error_of, run_to_end


async def post(client: Client, body: Any, path: str = "/api/tasks") -> tuple[int, Any]:
    resp = await client.post(path, json=body)
    return resp.status_code, await resp.get_json()


async def test_enqueue_returns_201_with_the_stored_task(client: Client) -> None:
    status, task = await post(client, {"type": "email.send", "payload": {"to": "a@b.c"},
                                       "priority": "high", "queue": "mail", "max_retries": 2,
                                       "timeout": 1.5})
    assert status == 201
    assert task["type"] == "email.send" and task["payload"] == {"to": "a@b.c"}
    assert task["priority"] == 9 and task["queue"] == "mail" and task["status"] == "pending"
    assert task["max_retries"] == 2 and task["timeout"] == 1.5 and task["attempt"] == 1
    resp = await client.get(f"/api/tasks/{task['id']}")
    assert resp.status_code == 200 and await resp.get_json() == task


async def test_defaults_apply_when_only_type_is_given(client: Client) -> None:
    status, task = await post(client, {"type": "t"})
    assert status == 201
    assert (task["queue"], task["priority"], task["payload"], task["max_retries"]) == ("default", 5, None, 3)


async def test_schedule_in_and_run_at_schedule_the_task(client: Client) -> None:
    _, a = await post(client, {"type": "t", "schedule_in": 3600})
    _, b = await post(client, {"type": "t", "run_at": time.time() + 3600})
    _, c = await post(client, {"type": "t", "run_at": "2999-01-01T00:00:00Z"})
    _, d = await post(client, {"type": "t", "run_at": "2000-01-01T00:00:00"})  # past: runs now
    assert [x["status"] for x in (a, b, c, d)] == ["scheduled", "scheduled", "scheduled", "pending"]
    assert c["scheduled_at"] == pytest.approx(32472144000.0)


async def test_unique_key_returns_the_live_task_with_200(client: Client) -> None:
    s1, first = await post(client, {"type": "t", "unique_key": "report:42"})
    s2, again = await post(client, {"type": "t", "unique_key": "report:42", "payload": 1})
    assert (s1, s2) == (201, 200)
    assert again["id"] == first["id"] and again["payload"] is None


async def test_batch_enqueues_all_and_flags_duplicates(client: Client) -> None:
    body = {"tasks": [{"type": "a", "payload": 1}, {"type": "b", "unique_key": "u"},
                      {"type": "c", "unique_key": "u"}, {"type": "d", "schedule_in": 60}]}
    status, out = await post(client, body, "/api/tasks/batch")
    assert status == 201 and len(out) == 4
    assert [t["created"] for t in out] == [True, True, False, True]
    assert out[2]["id"] == out[1]["id"] and out[2]["type"] == "b"
    assert [t["status"] for t in out] == ["pending", "pending", "pending", "scheduled"]
    listed = await (await client.get("/api/tasks")).get_json()
    assert len(listed["tasks"]) == 3


async def test_batch_with_one_bad_item_stores_nothing(client: Client) -> None:
    body = {"tasks": [{"type": "a"}, {"type": "b", "priority": 11}]}
    status, out = await post(client, body, "/api/tasks/batch")
    assert status == 400
    err = error_of(out)
    assert err["details"]["field"] == "tasks[1].priority"
    listed = await (await client.get("/api/tasks")).get_json()
    assert listed["tasks"] == []


async def test_batch_is_capped_at_10000(client: Client) -> None:
    status, out = await post(client, {"tasks": [{"type": "t"}] * 10_001}, "/api/tasks/batch")
    assert status == 400 and error_of(out)["details"]["field"] == "tasks"


async def test_empty_batch_is_fine(client: Client) -> None:
    assert await post(client, {"tasks": []}, "/api/tasks/batch") == (201, [])


async def test_list_filters_and_pages_newest_first(client: Client) -> None:
    ids = []
    for i in range(7):
        _, t = await post(client, {"type": "even" if i % 2 == 0 else "odd", "queue": f"q{i % 3}"})
        ids.append(t["id"])
    page1 = await (await client.get("/api/tasks?limit=3")).get_json()
    assert [t["id"] for t in page1["tasks"]] == ids[::-1][:3]
    page2 = await (await client.get(f"/api/tasks?limit=3&cursor={page1['next_cursor']}")).get_json()
    assert [t["id"] for t in page2["tasks"]] == ids[::-1][3:6]
    evens = await (await client.get("/api/tasks?type=even")).get_json()
    assert {t["id"] for t in evens["tasks"]} == set(ids[0::2]) and evens["next_cursor"] is None
    q1 = await (await client.get("/api/tasks?queue=q1&type=odd")).get_json()
    assert [t["id"] for t in q1["tasks"]] == [ids[1]]
    pending = await (await client.get("/api/tasks?status=pending&limit=50")).get_json()
    assert len(pending["tasks"]) == 7
    none = await (await client.get("/api/tasks?status=dead")).get_json()
    assert none == {"tasks": [], "next_cursor": None}
    # Empty parameters, as an HTML form sends them, mean "not given".
    blank = await (await client.get("/api/tasks?status=&type=&queue=&limit=&cursor=")).get_json()
    assert len(blank["tasks"]) == 7


@pytest.mark.parametrize("query, field", [
    ("status=bogus", "status"), ("limit=0", "limit"), ("limit=501", "limit"), ("limit=x", "limit"),
    ("cursor=-1", "cursor"), ("sort=asc", "sort"), ("limit=5&limit=6", "limit"),
])
async def test_list_rejects_bad_query_naming_it(client: Client, query: str, field: str) -> None:
    resp = await client.get(f"/api/tasks?{query}")
    assert resp.status_code == 400
    assert error_of(await resp.get_json())["details"]["field"] == field


async def test_unknown_task_is_404(client: Client) -> None:
    for path in ("/api/tasks/nope", "/api/tasks/a:b", "/api/tasks/" + "x" * 300):
        resp = await client.get(path)
        assert resp.status_code == 404
        assert error_of(await resp.get_json())["code"] == "not_found"
    for method, path in (("POST", "/api/tasks/nope/cancel"), ("POST", "/api/tasks/nope/retry"),
                         ("DELETE", "/api/tasks/nope")):
        resp = await client.open(path, method=method)
        assert resp.status_code == 404, path


async def test_cancel_then_cancel_again_conflicts(client: Client) -> None:
    _, t = await post(client, {"type": "t", "schedule_in": 60})
    resp = await client.post(f"/api/tasks/{t['id']}/cancel")
    assert resp.status_code == 200 and (await resp.get_json())["status"] == "cancelled"
    resp = await client.post(f"/api/tasks/{t['id']}/cancel")
    assert resp.status_code == 409
    err = error_of(await resp.get_json())
    assert err["code"] == "conflict" and err["details"]["status"] == "cancelled"


async def test_cancel_of_a_succeeded_task_conflicts(client: Client, runtime: Runtime) -> None:
    _, t = await post(client, {"type": "t"})
    assert await run_to_end(runtime, fail=False) == [t["id"]]
    resp = await client.post(f"/api/tasks/{t['id']}/cancel")
    assert resp.status_code == 409
    assert error_of(await resp.get_json())["details"]["status"] == "succeeded"


async def test_retry_moves_dead_or_cancelled_back_to_pending(client: Client, runtime: Runtime) -> None:
    _, dead = await post(client, {"type": "t", "max_retries": 0})
    assert await run_to_end(runtime, fail=True) == [dead["id"]]
    assert (await (await client.get(f"/api/tasks/{dead['id']}")).get_json())["status"] == "dead"
    resp = await client.post(f"/api/tasks/{dead['id']}/retry")
    body = await resp.get_json()
    # a fresh retry budget: attempt 1 of it shown, the dead attempt still listed
    assert resp.status_code == 200 and body["status"] == "pending" and body["attempt"] == 1
    assert [a["outcome"] for a in body["attempts"]] == ["failed"]
    _, cancelled = await post(client, {"type": "t", "schedule_in": 60})
    await client.post(f"/api/tasks/{cancelled['id']}/cancel")
    resp = await client.post(f"/api/tasks/{cancelled['id']}/retry")
    assert resp.status_code == 200 and (await resp.get_json())["status"] == "pending"


async def test_retry_of_a_live_task_conflicts(client: Client) -> None:
    _, t = await post(client, {"type": "t"})
    resp = await client.post(f"/api/tasks/{t['id']}/retry")
    assert resp.status_code == 409
    assert error_of(await resp.get_json())["details"]["status"] == "pending"


async def test_delete_removes_the_task(client: Client) -> None:
    _, t = await post(client, {"type": "t"})
    resp = await client.delete(f"/api/tasks/{t['id']}")
    assert resp.status_code == 200 and await resp.get_json() == {"id": t["id"], "deleted": True}
    assert (await client.get(f"/api/tasks/{t['id']}")).status_code == 404
    assert (await client.delete(f"/api/tasks/{t['id']}")).status_code == 404


async def test_depends_on_and_its_errors(client) -> None:  # type: ignore[no-untyped-def]
    parent = await (await client.post("/api/tasks", json={"type": "a"})).get_json()
    r = await client.post("/api/tasks", json={"type": "b", "depends_on": [parent["id"]]})
    assert r.status_code == 201
    child = await r.get_json()
    assert child["status"] == "waiting" and child["depends_on"] == [parent["id"]]
    got = await (await client.get(f"/api/tasks/{parent['id']}")).get_json()
    assert got["children"] == [child["id"]]
    r = await client.post("/api/tasks", json={"type": "b", "depends_on": ["no-such-task"]})
    assert r.status_code == 400 and "no-such-task" in (await r.get_json())["error"]["message"]
    r = await client.post("/api/tasks", json={"type": "b", "depends_on": [parent["id"]], "on_parent_failure": "x"})
    assert r.status_code == 400


async def test_store_full_is_a_503_naming_the_limit(client, app) -> None:  # type: ignore[no-untyped-def]
    from nexq.api import api_state

    api_state(app).runtime.guard.refusing = "the store uses 9 bytes, over Nexq's limit of 8"
    r = await client.post("/api/tasks", json={"type": "a"})
    body = await r.get_json()
    assert r.status_code == 503 and body["error"]["code"] == "store_full" and "limit" in body["error"]["message"]
