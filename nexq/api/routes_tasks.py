"""``/api/tasks``: enqueue (one or a batch), list and search, read, cancel,
retry, delete, and bulk actions."""

from __future__ import annotations

from typing import Any

import orjson
from quart import Response

from ..config import Settings
from ..queue import Enqueued, EnqueueRequest
from ..queue.search import SCAN_LIMIT, TaskFilter
from ..runtime.runtime import Runtime
from ..runtime.task_types import Item
from ..task import Status, Task
from . import bulk
from .errors import ApiError, invalid, json_response, not_found
from .routing import Routes
from .schemas import (
    MAX_BATCH,
    OBJECT,
    TASK,
    TASK_BATCH,
    TASK_CREATE,
    TASK_PAGE,
)
from .schemas_ops import BULK_RESULT, MAX_BULK, TASK_BULK, TASK_SEARCH_QUERY
from .state import current_runtime
from .validation import parse_datetime, parse_timestamp

ENVELOPE = 64 * 1024  # room for a task's other fields around its payload
READ_CHUNK = 1_000  # tasks read back per round trip after a batch

routes = Routes()


def to_item(item: dict[str, Any], max_payload: int, field: str = "") -> Item:
    """Turn one schema-valid task body into (type, payload, options) for
    ``rt.task_types.requests`` (which adds the type's defaults).

    Raises ApiError 413 when the encoded payload passes ``max_payload``
    bytes. ``field`` prefixes field names in messages (``tasks[3].``).
    """
    payload = item.get("payload")
    size = len(orjson.dumps(payload))
    if size > max_payload:
        raise ApiError(413, "payload_too_large",
                       f"{field}payload: {size} bytes encoded, more than {max_payload}",
                       {"field": f"{field}payload", "size": size, "limit": max_payload})
    run_at = item.get("run_at")
    if isinstance(run_at, str):
        # valid: the schema checked the format; a time before 1970 is simply past
        run_at = max(0.0, parse_datetime(run_at) or 0.0)
    options: dict[str, Any] = {
        "delay": float(item["schedule_in"]) if "schedule_in" in item else None,
        "run_at": float(run_at) if run_at is not None else None,
    }
    if "priority" in item:
        priority = item["priority"]
        options["priority"] = priority if isinstance(priority, str) else int(priority)
    if "queue" in item:
        options["queue"] = item["queue"]
    if "max_retries" in item:
        options["max_retries"] = int(item["max_retries"])
    if "timeout" in item:
        options["timeout"] = float(item["timeout"])
    if "unique_key" in item:
        options["unique_key"] = item["unique_key"]
    if "webhook" in item:
        options["webhook"] = item["webhook"]
    if "depends_on" in item:
        options["depends_on"] = list(item["depends_on"])
    if "on_parent_failure" in item:
        options["on_parent_failure"] = item["on_parent_failure"]
    if "expires_in" in item:
        options["expires_in"] = float(item["expires_in"])
    if "headers" in item:
        options["headers"] = item["headers"]
    return item["type"], payload, options


def check_task_id(task_id: str) -> None:
    """404 for ids no task can have (saves a store round trip, keeps keys sane)."""
    if not task_id or len(task_id) > 256 or any(c in task_id for c in "|,:"):
        raise not_found("task", task_id)


def single_body_limit(settings: Settings) -> int:
    """Largest body of ``POST /api/tasks``: one payload and its envelope."""
    return settings.max_payload_bytes + ENVELOPE


def batch_body_limit(settings: Settings) -> int:
    """Largest body of ``POST /api/tasks/batch`` (the largest the API takes):
    a batch may carry many payloads; each is still capped at max_payload."""
    return max(16 * settings.max_payload_bytes, 32 << 20)


def bulk_body_limit(settings: Settings) -> int:
    """Largest body of ``POST /api/tasks/bulk``: 10,000 ids of the longest kind."""
    return MAX_BULK * 300 + ENVELOPE


async def _requests(rt: Runtime, items: list[Item], prefix: str, *, check: bool = True) -> list[EnqueueRequest]:
    """The requests with their types' defaults (the handler's here, else the
    live workers'), each checked by the broker before anything is written
    (unless not ``check``: see :func:`enqueue_one`), so a bad item in a
    batch stores nothing."""
    try:
        requests = await rt.task_types.requests(items)
    except ValueError as exc:
        raise invalid(prefix or "body", str(exc)) from None
    if check:
        now = rt.broker.clock()
        for i, req in enumerate(requests):
            problem = _spec_problem(rt, req, now)
            if problem is not None:
                raise invalid(f"{prefix}[{i}]" if prefix else "body", problem)
    return requests


def _spec_problem(rt: Runtime, req: EnqueueRequest, now: float) -> str | None:
    """Why the broker refuses ``req`` before writing anything; None if it does not."""
    try:
        rt.broker.make_spec(req, now)
    except ValueError as exc:
        return str(exc)
    return None


async def _load(rt: Runtime, task_id: str) -> Task:
    check_task_id(task_id)
    task = await rt.inspector.get(task_id)
    if task is None:
        raise not_found("task", task_id)
    return task


async def _enqueue(rt: Runtime, requests: list[EnqueueRequest], field: str, *, checked: bool = True) -> list[Any]:
    """``rt.broker.enqueue_many``, its ValueErrors as 400s. Not ``checked``
    (one request not validated by :func:`_requests`): a refusal of the
    request itself names ``body``, as it would have there."""
    try:
        return await rt.broker.enqueue_many(requests)
    except ValueError as exc:  # checks that need the store: parents exist, ids free
        if not checked:
            # Asked again, the broker names the request's own problem if that
            # was it (it validates before any other check, as _requests would).
            problem = _spec_problem(rt, requests[0], rt.broker.clock())
            if problem is not None:
                raise invalid("body", problem) from None
        message = str(exc)
        if message.startswith("depends_on:"):
            raise invalid(await _missing_parent(rt, requests, field),
                          message.removeprefix("depends_on:").strip()) from None
        raise invalid(field or "task", message) from None


async def _missing_parent(rt: Runtime, requests: list[EnqueueRequest], field: str) -> str:
    """The field naming a parent that does not exist (``depends_on``, or
    ``tasks[i].depends_on`` in a batch); read again only on this error path."""
    for i, req in enumerate(requests):
        if req.depends_on and None in await rt.inspector.get_many(list(req.depends_on)):
            return f"{field}[{i}].depends_on" if field else "depends_on"
    return f"{field}.depends_on" if field else "depends_on"  # the parent vanished since: still that field


@routes.route("POST", "/api/tasks", summary="Enqueue a task", tag="tasks",
              body=TASK_CREATE, body_limit=single_body_limit,
              responses={201: TASK, 200: TASK, 409: None})
async def create(body: dict[str, Any]) -> Response:
    return json_response(*await enqueue_one(current_runtime(), body))


async def enqueue_one(rt: Runtime, body: dict[str, Any]) -> tuple[Any, int]:
    """``POST /api/tasks`` on a validated body: the task and the status
    (also served without Quart, by :mod:`nexq.api.fast`)."""
    # The broker validates the one request as it enqueues it (nothing is
    # written first); validating it here as well would build its spec twice.
    requests = await _requests(rt, [to_item(body, rt.settings.max_payload_bytes)], "", check=False)
    [done] = await _enqueue(rt, requests, "", checked=False)
    task = as_written(done)
    if task is None and done.created:  # no children yet: get_many skips the round trip that reads them
        [task] = await rt.inspector.get_many([done.task_id])
    elif task is None:
        task = await rt.inspector.get(done.task_id)
    if task is None:  # the unique_key holder ended and expired meanwhile
        raise ApiError(409, "conflict", "the task holding this unique_key vanished; retry",
                       {"id": done.task_id})
    return task.to_json(), 201 if done.created else 200


def as_written(done: Enqueued) -> Task | None:
    """The task ``done`` created to run at once, as written: pending,
    attempt 1, nothing else yet (what reading it back gives, without its
    round trips); None for any other (scheduled, waiting, an existing
    unique_key holder): those are read back."""
    spec = done.spec
    if not done.created or spec is None or spec.run_at is not None or spec.depends_on:
        return None
    return Task(spec=spec, status=Status.PENDING, attempt=1)


@routes.route("POST", "/api/tasks/batch", tag="tasks",
              summary=f"Enqueue up to {MAX_BATCH} tasks at once (all or none are validated first)",
              body=TASK_BATCH, body_limit=batch_body_limit,
              responses={201: {"type": "array", "items": TASK}})
async def create_batch(body: dict[str, Any]) -> Response:
    return json_response(*await enqueue_batch(current_runtime(), body))


async def enqueue_batch(rt: Runtime, body: dict[str, Any]) -> tuple[Any, int]:
    """``POST /api/tasks/batch`` on a validated body: the tasks and the
    status (also served without Quart, by :mod:`nexq.api.fast`)."""
    max_payload = rt.settings.max_payload_bytes
    items = [to_item(item, max_payload, f"tasks[{i}].") for i, item in enumerate(body["tasks"])]
    requests = await _requests(rt, items, "tasks")
    results = await _enqueue(rt, requests, "tasks") if requests else []
    out: list[dict[str, Any]] = []
    for lo in range(0, len(results), READ_CHUNK):
        chunk = results[lo : lo + READ_CHUNK]
        tasks = [as_written(r) for r in chunk]
        unknown = [i for i, task in enumerate(tasks) if task is None]
        if unknown:
            for i, task in zip(unknown, await rt.inspector.get_many([chunk[i].task_id for i in unknown])):
                tasks[i] = task
        for r, task in zip(chunk, tasks):
            data: dict[str, Any] = task.to_json() if task is not None else {"id": r.task_id}
            data["created"] = r.created
            out.append(data)
    return out, 201


@routes.route("GET", "/api/tasks", tag="tasks", query=TASK_SEARCH_QUERY, responses={200: TASK_PAGE},
              summary=f"List and search tasks, newest first (a call walks at most {SCAN_LIMIT:,} "
                      "index entries; next_cursor goes on)")
async def list_tasks(query: dict[str, Any]) -> Response:
    return await list_page(current_runtime(), where=search_filter(query), limit=query["limit"],
                           cursor=query.get("cursor"))


def search_filter(values: dict[str, Any]) -> TaskFilter:
    """The TaskFilter of validated query parameters or bulk filter fields."""
    times = {}
    for name in ("created_after", "created_before"):
        v = values.get(name)
        times[name] = (parse_timestamp(v) if isinstance(v, str) else v) if v is not None else None
    return TaskFilter(values.get("status"), values.get("type"), values.get("queue"), values.get("id_prefix"),
                      values.get("search"), **times)


@routes.route("GET", "/api/tasks/{id}", summary="One task with its attempts", tag="tasks",
              responses={200: TASK, 404: None})
async def get_task(id: str) -> Response:
    return json_response((await _load(current_runtime(), id)).to_json())


@routes.route("POST", "/api/tasks/{id}/cancel", summary="Cancel a task that has not ended",
              tag="tasks", responses={200: TASK, 404: None, 409: None})
async def cancel(id: str) -> Response:
    rt = current_runtime()
    task = await _load(rt, id)
    if task.status.terminal or not await rt.broker.cancel(id):
        task = await _load(rt, id)
        raise ApiError(409, "conflict", f"task {id!r} already {task.status.value}",
                       {"id": id, "status": task.status.value})
    return json_response((await _load(rt, id)).to_json())


@routes.route("POST", "/api/tasks/{id}/retry", tag="tasks", responses={200: TASK, 404: None, 409: None},
              summary="Run an ended task (dead, cancelled or succeeded) again: a new attempt "
                      "with a fresh retry budget")
async def retry(id: str) -> Response:
    rt = current_runtime()
    task = await _load(rt, id)
    if not task.status.terminal or not await rt.inspector.requeue(id):
        task = await _load(rt, id)
        raise ApiError(409, "conflict",
                       f"only ended tasks (dead, cancelled or succeeded) can run again; "
                       f"task {id!r} is {task.status.value}",
                       {"id": id, "status": task.status.value})
    return json_response((await _load(rt, id)).to_json())


@routes.route("DELETE", "/api/tasks/{id}", summary="Delete a task (cancelling it if live)",
              tag="tasks", responses={200: OBJECT, 404: None})
async def delete(id: str) -> Response:
    check_task_id(id)
    if not await current_runtime().inspector.delete(id):
        raise not_found("task", id)
    return json_response({"id": id, "deleted": True})


@routes.route("POST", "/api/tasks/bulk", tag="tasks", body=TASK_BULK, body_limit=bulk_body_limit,
              responses={200: BULK_RESULT},
              summary=f"Cancel, retry or delete up to {MAX_BULK:,} tasks named by id or found by a "
                      "listing filter; answers how many were done and which failed")
async def bulk_action(body: dict[str, Any]) -> Response:
    rt, action = current_runtime(), body["action"]
    if "ids" in body:
        tasks, failed = await bulk.by_ids(rt, body["ids"])
        matched, cursor = len(tasks) + len(failed), None
    elif body.get("filter"):
        try:
            tasks, cursor = await bulk.by_filter(rt, search_filter(body["filter"]),
                                                 body.get("limit", MAX_BULK), body.get("cursor"))
        except ValueError as exc:
            raise invalid("cursor", str(exc)) from None
        matched, failed = len(tasks), []
    else:
        raise invalid("ids", "give ids (a list of task ids) or filter (at least one condition: status, "
                             "type, queue, id_prefix, search, created_after, created_before)")
    done, refused = await bulk.apply(rt, action, tasks)
    return json_response(bulk.answer(action, matched, done, failed + refused, cursor))


async def list_page(rt: Runtime, *, where: TaskFilter, limit: int, cursor: str | None) -> Response:
    """One page of ``rt.inspector.find``; a foreign cursor is a 400 naming it.
    Items are abbreviated (the last attempt only, no children or webhook
    deliveries) and say so."""
    try:
        page = await rt.inspector.find(where, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise invalid("cursor", str(exc)) from None
    return json_response({"tasks": [{**t.to_json(), "abbreviated": True} for t in page.tasks],
                          "next_cursor": page.next_cursor})
