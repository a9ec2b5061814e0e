"""What an operator of Flower, RQ Dashboard or Sidekiq expects of the REST
API: bulk actions, search, running a succeeded task again, per-type
figures, pausing a queue in advance, a purge that needs to be asked twice,
lenient priorities and errors that name the field."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio
from quart.typing import TestClientProtocol as Client

from nexq.api import create_app
from nexq.config import Settings
from nexq.queue import EnqueueRequest, LaneReader, make_spec
from nexq.queue.search import TaskFilter
from nexq.runtime.runtime import Runtime
from nexq.store import Store

from .conftest import error_of, run_to_end


class Clock:
    """A wall clock the test moves by hand (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rt(store: Store, prefix: str, clock: Clock) -> Runtime:
    return Runtime.build(Settings(namespace=prefix.rstrip(":")), store, clock=clock)


@pytest.fixture
def api(rt: Runtime) -> Client:
    return create_app(rt).test_client()


async def post(client: Client, path: str, body: Any = None, status: int = 200) -> Any:
    resp = await client.post(path, json=body) if body is not None else await client.post(path)
    data = await resp.get_json()
    assert resp.status_code == status, data
    return data


async def get(client: Client, path: str, status: int = 200, **query: Any) -> Any:
    resp = await client.get(path, query_string=query)
    data = await resp.get_json()
    assert resp.status_code == status, data
    return data


async def enqueue(client: Client, status: int = 201, **body: Any) -> Any:
    return await post(client, "/api/tasks", {"type": "t", **body}, status)


async def make_due(api: Client, rt: Runtime, clock: Clock, tid: str, seconds: float) -> None:
    """Move the clock ``seconds`` on and run the scheduler until task ``tid`` is pending."""
    await rt.broker.run_due()  # the scheduler's first step sets the wheel's cursor
    clock.now += seconds
    with trio.fail_after(10):
        while (await get(api, f"/api/tasks/{tid}"))["status"] != "pending":
            await rt.broker.run_due()


def field_of(body: Any) -> str:
    return error_of(body)["details"]["field"]  # type: ignore[no-any-return]


# -- 1. bulk actions --------------------------------------------------------------------


async def test_bulk_by_ids_reports_what_was_done_and_what_failed(api: Client, rt: Runtime) -> None:
    live = [(await enqueue(api, payload=i))["id"] for i in range(3)]
    done = (await enqueue(api, queue="other", max_retries=0))["id"]
    await run_to_end(rt, fail=False, queue="other")
    out = await post(api, "/api/tasks/bulk", {"action": "cancel", "ids": [*live, done, "nope", live[0]]})
    assert (out["action"], out["matched"], out["done"], out["failed_count"]) == ("cancel", 5, 3, 2)
    assert {f["id"]: f["status"] for f in out["failed"]} == {done: "succeeded", "nope": None}
    assert "already ended" in next(f["error"] for f in out["failed"] if f["id"] == done)
    statuses = {i: (await get(api, f"/api/tasks/{i}"))["status"] for i in [*live, done]}
    assert statuses == {**{i: "cancelled" for i in live}, done: "succeeded"}
    # Retry runs every ended one again (succeeded included); delete removes them.
    out = await post(api, "/api/tasks/bulk", {"action": "retry", "ids": [*live, done]})
    assert (out["done"], out["failed"]) == (4, [])
    assert {(await get(api, f"/api/tasks/{i}"))["status"] for i in [*live, done]} == {"pending"}
    out = await post(api, "/api/tasks/bulk", {"action": "delete", "ids": [*live, "x:y"]})
    assert (out["done"], [f["id"] for f in out["failed"]]) == (3, ["x:y"])
    assert [t["id"] for t in (await get(api, "/api/tasks"))["tasks"]] == [done]


async def test_bulk_by_filter_goes_page_by_page_with_a_cursor(api: Client, rt: Runtime) -> None:
    for q in ("a", "a", "a", "b"):
        await enqueue(api, queue=q, max_retries=0)
    await run_to_end(rt, fail=True, queue="a")
    await run_to_end(rt, fail=True, queue="b")
    keep = (await enqueue(api, queue="a"))["id"]  # pending: the filter on status leaves it
    body = {"action": "retry", "filter": {"status": "dead", "queue": "a"}, "limit": 2}
    first = await post(api, "/api/tasks/bulk", body)
    assert (first["matched"], first["done"]) == (2, 2) and first["next_cursor"] is not None
    rest = await post(api, "/api/tasks/bulk", {**body, "cursor": str(first["next_cursor"])})
    assert (rest["matched"], rest["done"], rest["next_cursor"]) == (1, 1, None)
    listed = (await get(api, "/api/tasks", queue="a"))["tasks"]
    assert sorted(t["status"] for t in listed) == ["pending"] * 4 and keep in {t["id"] for t in listed}
    assert (await get(api, "/api/dead"))["tasks"][0]["queue"] == "b"


async def test_bulk_is_bounded_and_says_what_is_missing(api: Client) -> None:
    over = await post(api, "/api/tasks/bulk", {"action": "delete", "ids": [f"t{i}" for i in range(10_001)]}, 400)
    assert field_of(over) == "ids" and "at most 10000" in error_of(over)["message"]
    assert field_of(await post(api, "/api/tasks/bulk", {"action": "delete"}, 400)) == "ids"
    assert field_of(await post(api, "/api/tasks/bulk", {"action": "delete", "filter": {}}, 400)) == "ids"
    both = await post(api, "/api/tasks/bulk", {"action": "cancel", "ids": ["a"], "filter": {"queue": "q"}}, 400)
    assert "not both" in error_of(both)["message"]
    assert field_of(await post(api, "/api/tasks/bulk", {"action": "pause", "ids": ["a"]}, 400)) == "action"
    too_many = await post(api, "/api/tasks/bulk", {"action": "retry", "filter": {"queue": "q"}, "limit": 10_001}, 400)
    assert field_of(too_many) == "limit"


# -- 2. search ----------------------------------------------------------------------------------


async def test_search_by_id_prefix_text_and_time_range(api: Client, clock: Clock) -> None:
    start = clock.now
    old = (await enqueue(api, type="send_email", payload={"to": "Ada@example.com"}))["id"]
    clock.now += 3600
    new = (await enqueue(api, type="resize", queue="media", payload={"key": "cat.png"}))["id"]

    async def ids(**query: Any) -> list[str]:
        return [t["id"] for t in (await get(api, "/api/tasks", **query))["tasks"]]

    assert await ids(id_prefix=old[:-2]) == [old]
    assert await ids(search="ada@EXAMPLE") == [old]  # payload text, any case
    assert await ids(search="MEDIA") == [new]  # the queue
    assert await ids(search="email") == [old]  # the type
    assert await ids(search="nothing like it") == []
    assert await ids(created_after=str(start + 60)) == [new]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 60))
    assert await ids(created_before=iso) == [old]
    assert await ids(created_after=str(start - 1), created_before=str(start + 1)) == [old]
    bad = await get(api, "/api/tasks", 400, created_after="yesterday")
    assert field_of(bad) == "created_after" and "ISO-8601" in error_of(bad)["message"]


async def test_a_search_walks_a_bounded_part_of_the_index_per_call(api: Client, rt: Runtime, clock: Clock) -> None:
    await post(api, "/api/tasks/batch", {"tasks": [{"type": "t", "payload": i} for i in range(450)]}, 201)
    rare = TaskFilter(text="never in any task")
    page = await rt.inspector.find(rare, limit=10, walk=200)
    assert page.tasks == [] and page.next_cursor is not None  # stopped after ~200 entries
    cursor, calls = None, 0
    while True:
        page = await rt.inspector.find(rare, limit=10, cursor=cursor, walk=200)
        calls += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert calls == 3
    # A lower time bound ends the walk once a whole chunk is older than it (clock skew allowed).
    clock.now += 600
    fresh = (await enqueue(api))["id"]
    page = await rt.inspector.find(TaskFilter(created_after=clock.now - 1), limit=10)
    assert [t.id for t in page.tasks] == [fresh] and page.next_cursor is None


# -- 3. run a succeeded task again ---------------------------------------------------------------


async def test_a_succeeded_task_runs_again_with_a_fresh_budget(api: Client, rt: Runtime, clock: Clock) -> None:
    tid = (await enqueue(api, max_retries=1))["id"]
    await run_to_end(rt, fail=True)
    await make_due(api, rt, clock, tid, 400)  # past the longest backoff
    await run_to_end(rt, fail=False)
    first = await get(api, f"/api/tasks/{tid}")
    assert (first["status"], first["attempt"]) == ("succeeded", 2)
    again = await post(api, f"/api/tasks/{tid}/retry")
    assert (again["status"], again["attempt"]) == ("pending", 1)  # a fresh retry budget
    await run_to_end(rt, fail=False)
    done = await get(api, f"/api/tasks/{tid}")
    assert done["status"] == "succeeded" and len(done["attempts"]) == 3
    live = (await enqueue(api, schedule_in=600))["id"]
    refused = await post(api, f"/api/tasks/{live}/retry", status=409)
    assert "scheduled" in error_of(refused)["message"]


# -- 4. per-type figures ----------------------------------------------------------------------


async def test_type_stats_give_counts_success_rate_runtime_and_wait(api: Client, rt: Runtime, clock: Clock) -> None:
    await post(api, "/api/tasks/batch", {"tasks": [{"type": "mail", "max_retries": 0}] * 4
                                         + [{"type": "img", "max_retries": 0}]}, 201)
    clock.now += 5  # they waited 5 s in the queue
    claimed = await rt.broker.claim(["default"], 10, "w", LaneReader(rt.store, rt.broker.keys))
    clock.now += 2  # and ran 2 s
    for c in claimed:
        if c.spec.type == "mail" and c is not claimed[0]:
            await rt.broker.ack(c, None)
        else:
            await rt.broker.fail(c, RuntimeError("boom"))
    stats = await get(api, "/api/types/stats", minutes=10)
    by_type = {t["type"]: t for t in stats["types"]}
    mail, img = by_type["mail"], by_type["img"]
    assert [t["type"] for t in stats["types"]] == ["mail", "img"]  # most tasks first
    assert (mail["count"], mail["statuses"], mail["success_rate"]) == (4, {"succeeded": 3, "dead": 1}, 0.75)
    assert mail["runtime"] == {"p50": pytest.approx(2), "p95": pytest.approx(2), "p99": pytest.approx(2)}
    assert mail["wait"]["p50"] == pytest.approx(5) and mail["wait"]["p99"] == pytest.approx(5)
    assert (img["success_rate"], img["runtime"]["p50"]) == (0.0, None)
    assert stats["window"]["sampled"] == 5 and stats["window"]["complete"] is True
    assert sum(b["count"] for b in mail["series"]) == 4 and len(mail["series"]) == 12
    # Sampled: the newest tasks only, and it says so.
    small = await get(api, "/api/types/stats", minutes=10, sample=2)
    assert small["window"]["sampled"] == 2 and small["window"]["complete"] is False
    only = await get(api, "/api/types/stats", minutes=10, type="img")
    assert [t["type"] for t in only["types"]] == ["img"]
    clock.now += 3600  # out of the window
    assert (await get(api, "/api/types/stats", minutes=10))["types"] == []


# -- 7. pausing a queue in advance ----------------------------------------------------------------


async def test_a_queue_without_tasks_can_be_paused_in_advance(api: Client, rt: Runtime) -> None:
    assert await post(api, "/api/queues/nightly/pause") == {"name": "nightly", "paused": True}
    queues = {q["name"]: q for q in (await get(api, "/api/queues"))["queues"]}
    assert queues["nightly"]["paused"] is True and queues["nightly"]["pending"] == 0
    tid = (await enqueue(api, queue="nightly"))["id"]
    assert await run_to_end(rt, fail=False, queue="nightly") == []  # paused: nothing claimed
    assert (await get(api, f"/api/tasks/{tid}"))["status"] == "pending"
    await post(api, "/api/queues/nightly/resume")
    assert await run_to_end(rt, fail=False, queue="nightly") == [tid]
    bad = await post(api, "/api/queues/a:b/pause", status=400)
    assert field_of(bad) == "name"
    assert error_of(await post(api, "/api/queues/typo/resume", status=404))["code"] == "not_found"


# -- 8. purging dead letters asks for "all" -------------------------------------------------------


async def test_purge_needs_all_or_a_queue_and_can_be_a_dry_run(api: Client, rt: Runtime) -> None:
    for q in ("a", "a", "b"):
        await enqueue(api, queue=q, max_retries=0)
    for q in ("a", "b"):
        await run_to_end(rt, fail=True, queue=q)
    for body in (None, {}, {"all": False}, {"dry_run": True}):
        refused = await post(api, "/api/dead/purge", body, 400)
        assert field_of(refused) == "all" and '"all": true' in error_of(refused)["message"]
    assert len((await get(api, "/api/dead"))["tasks"]) == 3
    dry = await post(api, "/api/dead/purge", {"all": True, "dry_run": True})
    assert dry == {"purged": 0, "would_purge": 3, "dry_run": True}
    assert await post(api, "/api/dead/purge", {"queue": "a", "dry_run": True}) == {
        "purged": 0, "would_purge": 2, "dry_run": True}
    assert len((await get(api, "/api/dead"))["tasks"]) == 3
    assert await post(api, "/api/dead/purge", {"queue": "a"}) == {"purged": 2}
    assert await post(api, "/api/dead/purge", {"all": True}) == {"purged": 1}
    assert (await get(api, "/api/dead"))["tasks"] == []


# -- 9. lenient priorities, errors naming the field --------------------------------------------------


@pytest.mark.parametrize(("given", "stored"), [("7", 7), ("HIGH", 9), ("Low", 0), (3, 3), ("normal", 5)])
async def test_priority_as_text_or_any_case(api: Client, given: Any, stored: int) -> None:
    assert (await enqueue(api, priority=given))["priority"] == stored
    assert make_spec(EnqueueRequest("t", priority=given), time.time()).priority == stored


@pytest.mark.parametrize("given", ["10", " 7", "7.5", "urgent", "", "hi gh"])
async def test_bad_priorities_are_refused_alike(api: Client, given: str) -> None:
    assert field_of(await enqueue(api, 400, priority=given)) == "priority"
    with pytest.raises(ValueError, match="priority"):
        make_spec(EnqueueRequest("t", priority=given), time.time())


@pytest.mark.parametrize("name", ["send\nemail", "tab\there", "bell\x07", "del\x7f", "nel\x85x", "ls\u2028x", " "])
async def test_a_type_with_control_characters_is_refused_alike(api: Client, name: str) -> None:
    refused = await enqueue(api, 400, type=name)
    assert field_of(refused) == "type" and "control characters" in error_of(refused)["message"]
    with pytest.raises(ValueError, match="^type must be"):
        make_spec(EnqueueRequest(name), time.time())
    assert (await enqueue(api, type="héllo wörld · 1"))["type"] == "héllo wörld · 1"


async def test_webhook_and_depends_on_errors_read_well(api: Client) -> None:
    bad = await enqueue(api, 400, webhook="ftp://example.com/x")
    assert error_of(bad)["message"] == "webhook: must be an http(s) URL with a host name or address"
    unknown = await enqueue(api, 400, depends_on=["no-such-task"])
    assert field_of(unknown) == "depends_on"
    assert error_of(unknown)["message"] == "depends_on: no task 'no-such-task'"
    parent = (await enqueue(api))["id"]
    batch = await post(api, "/api/tasks/batch", {"tasks": [{"type": "t", "depends_on": [parent]},
                                                           {"type": "t", "depends_on": [parent, "gone"]}]}, 400)
    assert field_of(batch) == "tasks[1].depends_on"


# -- 10. history and abbreviations --------------------------------------------------------------


async def test_scheduled_at_keeps_when_the_task_was_due(api: Client, rt: Runtime, clock: Clock) -> None:
    task = await enqueue(api, schedule_in=30)
    due = task["scheduled_at"]
    assert due == pytest.approx(task["created_at"] + 30)
    await make_due(api, rt, clock, task["id"], 31)
    await run_to_end(rt, fail=False)
    done = await get(api, f"/api/tasks/{task['id']}")
    assert (done["status"], done["scheduled_at"]) == ("succeeded", pytest.approx(due, abs=0.01))
    assert (await enqueue(api))["scheduled_at"] is None  # to run at once: never due later


async def test_listed_tasks_say_they_are_abbreviated(api: Client, rt: Runtime, clock: Clock) -> None:
    parent = (await enqueue(api, max_retries=1))["id"]
    await enqueue(api, depends_on=[parent])
    await run_to_end(rt, fail=True)
    await make_due(api, rt, clock, parent, 400)
    await run_to_end(rt, fail=False)
    whole = await get(api, f"/api/tasks/{parent}")
    assert len(whole["attempts"]) == 2 and len(whole["children"]) == 1 and "abbreviated" not in whole
    listed = next(t for t in (await get(api, "/api/tasks"))["tasks"] if t["id"] == parent)
    assert listed["abbreviated"] is True and len(listed["attempts"]) == 1 and listed["children"] == []
    assert {k for k in listed if k != "abbreviated"} == set(whole)
    dead = await get(api, "/api/dead")
    assert all(t["abbreviated"] for t in dead["tasks"])
    doc = await get(api, "/openapi.json")
    item = doc["paths"]["/api/tasks"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert "abbreviated" in item["properties"]["tasks"]["items"]["required"]
