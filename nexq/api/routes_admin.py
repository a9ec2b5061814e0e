"""Queues, dead letters, workers, stats, cron, task types, nodes and the health check."""

from __future__ import annotations

import os
from typing import Any

from quart import Response

from ..errors import StoreUnavailable
from ..queue.search import TaskFilter
from ..runtime.guard import health
from ..runtime.node_report import node_report, nodes_down
from ..runtime.runtime import Runtime
from .errors import ApiError, invalid, json_response, not_found
from .routes_tasks import list_page
from .routing import Routes
from .schemas import (
    DEAD_LIST_QUERY,
    OBJECT,
    OBJECT_LIST,
    QUEUE_FILTER,
    QUEUE_NAME,
    STATS_QUERY,
    TASK_PAGE,
)
from .schemas_ops import DEAD_PURGE, PURGE_RESULT, TYPE_STATS, TYPE_STATS_QUERY
from .state import current_runtime
from .stats import ping, queues, snapshot, workers
from .type_stats import summarize
from .validation import JsonSchema, validate

routes = Routes()


async def _known_queue(rt: Runtime, name: str) -> str:
    # Resuming an unknown name is a typo: nothing is paused under it.
    if name not in await rt.inspector.queues():
        raise not_found("queue", name)
    return name


def _queue_name(name: str) -> str:
    """``name`` if a queue may have it, else a 400 naming ``name``."""
    issues = validate(QUEUE_NAME, name, "name")
    if issues:
        raise invalid("name", issues[0].message)
    return name


@routes.route("GET", "/api/queues", summary="Queues with depth, counts and running",
              tag="queues", responses={200: OBJECT})
async def list_queues() -> Response:
    return json_response({"queues": await queues(current_runtime())})


@routes.route("POST", "/api/queues/{name}/pause", tag="queues", responses={200: OBJECT},
              summary="Stop workers claiming from a queue; a queue without tasks yet is paused in "
                      "advance and listed from then on")
async def pause(name: str) -> Response:
    await current_runtime().inspector.pause(_queue_name(name))
    return json_response({"name": name, "paused": True})


@routes.route("POST", "/api/queues/{name}/resume", summary="Let workers claim from a queue again",
              tag="queues", responses={200: OBJECT, 404: None})
async def resume(name: str) -> Response:
    rt = current_runtime()
    await rt.inspector.resume(await _known_queue(rt, name))
    return json_response({"name": name, "paused": False})


@routes.route("GET", "/api/dead", summary="Dead tasks, newest first", tag="dead",
              query=DEAD_LIST_QUERY, responses={200: TASK_PAGE})
async def list_dead(query: dict[str, Any]) -> Response:
    return await list_page(current_runtime(), where=TaskFilter(status="dead", queue=query.get("queue")),
                           limit=query["limit"], cursor=query.get("cursor"))


@routes.route("POST", "/api/dead/requeue", tag="dead",
              summary="Run every dead task (of one queue) again", body=QUEUE_FILTER,
              body_required=False, responses={200: OBJECT})
async def requeue_dead(body: dict[str, Any]) -> Response:
    n = await current_runtime().inspector.requeue_dead(body.get("queue"))
    return json_response({"requeued": n})


@routes.route("POST", "/api/dead/purge", tag="dead", body=DEAD_PURGE, body_required=False,
              responses={200: PURGE_RESULT},
              summary='Delete the dead tasks of one queue ({"queue": ...}) or of all ({"all": true}); '
                      '"dry_run": true counts them instead')
async def purge_dead(body: dict[str, Any]) -> Response:
    rt, queue = current_runtime(), body.get("queue")
    if queue is None and body.get("all") is not True:
        raise invalid("all", 'give "all": true to purge the dead tasks of every queue, '
                             'or "queue" to purge one queue\'s')
    if body.get("dry_run"):
        n = await rt.inspector.count_dead(queue)
        return json_response({"purged": 0, "would_purge": n, "dry_run": True})
    return json_response({"purged": await rt.inspector.purge_dead(queue)})


@routes.route("GET", "/api/types/stats", tag="types", query=TYPE_STATS_QUERY, responses={200: TYPE_STATS},
              summary="Per task type: count, success rate, runtime and queue-wait p50/p95/p99, overall "
                      "and over time, from the newest tasks of the window (sampled)")
async def type_stats(query: dict[str, Any]) -> Response:
    rt = current_runtime()
    end = rt.broker.clock()
    start = end - query["minutes"] * 60
    samples, complete = await rt.inspector.samples(start, query["sample"])
    if query.get("type"):
        samples = [s for s in samples if s.type == query["type"]]
    return json_response(summarize(samples, start, end, complete))


@routes.route("GET", "/api/workers", summary="Registered workers (stale ones flagged)",
              tag="workers", responses={200: {"type": "object", "properties": {"workers": OBJECT_LIST}}})
async def list_workers() -> Response:
    return json_response({"workers": await workers(current_runtime())})


@routes.route("GET", "/api/stats", summary="Counts, per-queue stats, throughput, workers, store",
              tag="stats", query=STATS_QUERY, responses={200: OBJECT})
async def stats(query: dict[str, Any]) -> Response:
    return json_response(await snapshot(current_runtime(), query["minutes"]))


# Responses of /api/cron and /api/types (documentation only).
_NUMBER_OR_NULL: JsonSchema = {"type": ["number", "null"]}
TYPE_DEFAULTS: JsonSchema = {
    "type": "object",
    "description": "a task type's defaults (null: not set)",
    "properties": {name: {"type": [kind, "null"]} for name, kind in (
        ("queue", "string"), ("priority", "integer"), ("max_retries", "integer"), ("timeout", "number"),
        ("retry", "object"), ("webhook", "string"), ("concurrency_limit", "integer"), ("rate_limit", "string"))},
}
_SOURCES: dict[str, JsonSchema] = {
    "workers": {"type": "array", "items": {"type": "string"}, "description": "live workers publishing it"},
    "conflicts": {"type": "array", "items": {"type": "object"},
                  "description": "other definitions live workers publish under the same name"},
}


def _listing(key: str, required: list[str], properties: dict[str, JsonSchema]) -> JsonSchema:
    """``{key: [objects with these properties]}``."""
    item = {"type": "object", "required": required, "properties": {**properties, **_SOURCES}}
    return {"type": "object", "required": [key], "properties": {key: {"type": "array", "items": item}}}


TYPE_LIST = _listing("types", ["type", "defaults", "local", "workers", "conflicts"], {
    "type": {"type": "string"},
    "defaults": {**TYPE_DEFAULTS, "description": "what a task enqueued through this server gets"},
    "registered": {"oneOf": [TYPE_DEFAULTS, {"type": "null"}], "description": "the newest live worker's"},
    "local": {"type": "boolean", "description": "this server's app has the handler"},
})
CRON_LIST = _listing("cron", ["name", "schedule", "timezone", "type", "next_fire"], {
    "name": {"type": "string"}, "schedule": {"type": "string"}, "timezone": {"type": "string"},
    "type": {"type": "string"}, "payload": {}, "last_fire": _NUMBER_OR_NULL, "next_fire": {"type": "number"},
    "here": {"type": "boolean", "description": "this server's app has the entry"},
})


@routes.route("GET", "/api/cron", tag="cron",
              summary="Cron entries of this app and of the live workers, with their last and next fire",
              responses={200: CRON_LIST})
async def cron() -> Response:
    return json_response({"cron": await current_runtime().cron.status()})


@routes.route("GET", "/api/types", tag="types",
              summary="Task types served here or by live workers, with the defaults their tasks get",
              responses={200: TYPE_LIST})
async def types() -> Response:
    return json_response({"types": await current_runtime().task_types.describe()})


@routes.route("GET", "/api/nodes", tag="stats",
              summary="Store nodes: reachability, queues placed on each, queues draining from each",
              responses={200: {"type": "object", "properties": {"nodes": OBJECT_LIST}}})
async def nodes() -> Response:
    return json_response({"nodes": await node_report(current_runtime())})


@routes.route("GET", "/healthz", summary="Liveness and store reachability", tag="health",
              secured=False, responses={200: OBJECT})
async def healthz() -> Response:
    rt = current_runtime()
    try:
        latency = await ping(rt)
    except StoreUnavailable as exc:
        err = ApiError(503, "store_unavailable", f"the store cannot be reached: {exc}")
        return json_response({
            "status": "unavailable", "store": rt.store.kind,
            "error": {"code": err.code, "message": err.message, "details": None},
        }, 503)
    # pid: which process answered (nexq run --api-processes N serves one port from N)
    body: dict[str, Any] = {"status": "ok", "store": rt.store.kind, "latency_ms": latency, "pid": os.getpid()}
    down = await nodes_down(rt) if len(rt.broker.nodes) > 1 else []  # it pings the other nodes only
    if down:
        # The home node answers, so the API works; the queues on these
        # nodes do not move until they are back.
        body.update(status="degraded", nodes_down=down)
    # Keys evicted (canaries lost) or new tasks refused: the API works, the store is in trouble.
    reasons = health(rt.guards, rt.node_names)
    if reasons:
        body.update(status="degraded", reasons=reasons)
    body["evictions_detected"] = sum(g.evicted for g in rt.guards)
    return json_response(body)

