"""Queues, dead letters, workers, stats, cron and the health check."""

from __future__ import annotations

from typing import Any

import trio
from quart import Response

from ..errors import StoreUnavailable
from ..runtime.runtime import Runtime
from .errors import ApiError, json_response, not_found
from .routes_tasks import list_page
from .routing import Router
from .schemas import (
    DEAD_LIST_QUERY,
    OBJECT,
    OBJECT_LIST,
    QUEUE_FILTER,
    STATS_QUERY,
    TASK_PAGE,
)
from .state import ApiState
from .stats import PING_TIMEOUT, ping, queues, snapshot, workers


def register(router: Router, state: ApiState) -> None:
    """Add the admin and health routes to ``router``."""
    rt = state.runtime

    async def known_queue(name: str) -> str:
        # Pausing an unknown name is almost always a typo, so it is a 404
        # rather than a marker no listing would ever show.
        if name not in await rt.inspector.queues():
            raise not_found("queue", name)
        return name

    async def list_queues() -> Response:
        return json_response({"queues": await queues(rt)})

    async def pause(name: str) -> Response:
        await rt.inspector.pause(await known_queue(name))
        return json_response({"name": name, "paused": True})

    async def resume(name: str) -> Response:
        await rt.inspector.resume(await known_queue(name))
        return json_response({"name": name, "paused": False})

    async def list_dead(query: dict[str, Any]) -> Response:
        return await list_page(rt, status="dead", queue=query.get("queue"),
                               limit=query["limit"], cursor=query.get("cursor"))

    async def requeue_dead(body: dict[str, Any]) -> Response:
        n = await rt.inspector.requeue_dead(body.get("queue"))
        return json_response({"requeued": n})

    async def purge_dead(body: dict[str, Any]) -> Response:
        n = await rt.inspector.purge_dead(body.get("queue"))
        return json_response({"purged": n})

    async def list_workers() -> Response:
        return json_response({"workers": await workers(rt)})

    async def stats(query: dict[str, Any]) -> Response:
        return json_response(await snapshot(rt, query["minutes"]))

    async def cron() -> Response:
        return json_response({"cron": await rt.cron.status()})

    async def nodes() -> Response:
        from ..runtime.node_report import node_report

        return json_response({"nodes": await node_report(rt)})

    async def healthz() -> Response:
        try:
            latency = await ping(rt)
        except StoreUnavailable as exc:
            err = ApiError(503, "store_unavailable", f"the store cannot be reached: {exc}")
            return json_response({
                "status": "unavailable", "store": rt.store.kind,
                "error": {"code": err.code, "message": err.message, "details": None},
            }, 503)
        body: dict[str, Any] = {"status": "ok", "store": rt.store.kind, "latency_ms": latency}
        down = await nodes_down(rt)
        if down:
            # The home node answers, so the API works; the queues on these
            # nodes do not move until they are back.
            body.update(status="degraded", nodes_down=down)
        return json_response(body)

    router.add("GET", "/api/queues", list_queues, summary="Queues with depth, counts and running",
               tag="queues", responses={200: OBJECT})
    router.add("POST", "/api/queues/{name}/pause", pause, summary="Stop workers claiming from a queue",
               tag="queues", responses={200: OBJECT, 404: None})
    router.add("POST", "/api/queues/{name}/resume", resume, summary="Let workers claim from a queue again",
               tag="queues", responses={200: OBJECT, 404: None})
    router.add("GET", "/api/dead", list_dead, summary="Dead tasks, newest first", tag="dead",
               query=DEAD_LIST_QUERY, responses={200: TASK_PAGE})
    router.add("POST", "/api/dead/requeue", requeue_dead, tag="dead",
               summary="Run every dead task (of one queue) again", body=QUEUE_FILTER,
               body_required=False, responses={200: OBJECT})
    router.add("POST", "/api/dead/purge", purge_dead, tag="dead",
               summary="Delete every dead task (of one queue)", body=QUEUE_FILTER,
               body_required=False, responses={200: OBJECT})
    router.add("GET", "/api/workers", list_workers, summary="Registered workers (stale ones flagged)",
               tag="workers", responses={200: {"type": "object", "properties": {"workers": OBJECT_LIST}}})
    router.add("GET", "/api/stats", stats, summary="Counts, per-queue stats, throughput, workers, store",
               tag="stats", query=STATS_QUERY, responses={200: OBJECT})
    router.add("GET", "/api/cron", cron, summary="Cron entries with their last and next fire",
               tag="cron", responses={200: OBJECT})
    router.add("GET", "/api/nodes", nodes, tag="stats",
               summary="Store nodes: reachability, queues placed on each, queues draining from each",
               responses={200: {"type": "object", "properties": {"nodes": OBJECT_LIST}}})
    router.add("GET", "/healthz", healthz, summary="Liveness and store reachability", tag="health",
               secured=False, responses={200: OBJECT})


async def nodes_down(rt: Runtime) -> list[str]:
    """Names of the store nodes other than home that do not answer a ping."""
    from ..queue.cluster import ClusterBroker, gather

    broker = rt.broker
    if not isinstance(broker, ClusterBroker):
        return []

    async def dead(i: int) -> bool:
        with trio.move_on_after(PING_TIMEOUT):
            try:
                await broker.nodes[i].store.ping()
                return False
            except StoreUnavailable:
                return True
        return True

    flags = await gather(dead, range(1, len(broker.nodes)))
    return [broker.names[i] for i, d in zip(range(1, len(broker.nodes)), flags) if d]
