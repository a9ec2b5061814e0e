"""Read models shared by /api/queues, /api/workers, /api/stats, SSE and /metrics."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import trio

from ..errors import StoreUnavailable
from ..runtime.guard import summary
from ..runtime.runtime import Runtime

PING_TIMEOUT = 5.0
STATUS_KEYS = ("scheduled", "pending", "running", "succeeded", "dead", "cancelled")

# Worker facts are what Worker.info() publishes in the registry: among them
# ``last_heartbeat`` (unix seconds), ``heartbeat_interval`` (seconds) and
# ``running`` (one {"id", "type", "queue", ...} per attempt in progress).


def mark_stale(workers: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Copies of ``workers`` with ``stale``: no heartbeat for 2 intervals."""
    return [{**w, "stale": now - w["last_heartbeat"] > 2 * w["heartbeat_interval"]} for w in workers]


async def workers(rt: Runtime) -> list[dict[str, Any]]:
    """Registered workers with their ``stale`` flag."""
    return mark_stale(await rt.registry.list(), rt.broker.clock())


async def queues(rt: Runtime, live: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Inspector.queue_stats plus ``running`` from live (non-stale) workers."""
    stats = await rt.inspector.queue_stats()
    if live is None:
        live = [w for w in await workers(rt) if not w["stale"]]
    running = Counter(attempt["queue"] for w in live for attempt in w["running"])
    for entry in stats:
        entry["running"] = running.get(entry["name"], 0)
    return stats


async def ping(rt: Runtime) -> float:
    """Store round trip in milliseconds; raises StoreUnavailable (also on timeout)."""
    with trio.move_on_after(PING_TIMEOUT):
        return round(await rt.store.ping() * 1000, 3)
    raise StoreUnavailable(f"no answer to ping within {PING_TIMEOUT:g} s")


async def snapshot(rt: Runtime, minutes: int = 60) -> dict[str, Any]:
    """Everything the dashboard's overview shows, in a few round trips.

    ``counts``: tasks by status summed over queues (``pending`` is queue
    depth; ``running`` comes from live workers' own reports, ``scheduled``
    includes retries waiting for their backoff).
    """
    all_workers = await workers(rt)
    live = [w for w in all_workers if not w["stale"]]
    per_queue = await queues(rt, live)
    counts = {k: 0 for k in STATUS_KEYS}
    for q in per_queue:
        for k in STATUS_KEYS:
            counts[k] += int(q.get(k, 0))
    series = await rt.inspector.throughput(minutes)
    return {
        "time": rt.broker.clock(),
        "counts": counts,
        "queues": per_queue,
        "throughput": series,
        "workers": {"live": len(live), "stale": len(all_workers) - len(live)},
        "store": {"kind": rt.store.kind, "latency_ms": await ping(rt), **summary(rt.guards, rt.node_names)},
        "uptime": max(0.0, time.time() - rt.started_at),
        "events": {"subscribers": rt.events.subscribers, "dropped": rt.events.dropped},
    }
