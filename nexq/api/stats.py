"""Read models shared by /api/queues, /api/workers, /api/stats, SSE and /metrics."""

from __future__ import annotations

import time
from typing import Any

import trio

from ..errors import StoreUnavailable
from ..runtime.runtime import Runtime

DEFAULT_HEARTBEAT = 5.0  # seconds, when a worker does not say
PING_TIMEOUT = 5.0
STATUS_KEYS = ("scheduled", "pending", "running", "succeeded", "dead", "cancelled")


def running_by_queue(info: dict[str, Any]) -> dict[str, int]:
    """Attempts a worker is running, per queue, from its registry facts.

    Understands ``running_by_queue`` ({queue: n}) or ``running`` as a list
    of ``{"queue": ...}`` entries; a bare count has no queue and is filed
    under ``""`` (it still counts in totals).
    """
    by_q = info.get("running_by_queue")
    if isinstance(by_q, dict):
        return {str(q): int(n) for q, n in by_q.items() if isinstance(n, int) and not isinstance(n, bool)}
    running = info.get("running")
    out: dict[str, int] = {}
    if isinstance(running, list):
        for item in running:
            q = item.get("queue", "") if isinstance(item, dict) else ""
            out[str(q)] = out.get(str(q), 0) + 1
    elif isinstance(running, int) and not isinstance(running, bool):
        out[""] = running
    return out


def mark_stale(workers: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Copies of ``workers`` with ``stale``: no heartbeat for 2 intervals."""
    out = []
    for info in workers:
        beat = info.get("last_heartbeat")
        interval = info.get("heartbeat_interval")
        if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
            interval = DEFAULT_HEARTBEAT
        stale = isinstance(beat, (int, float)) and not isinstance(beat, bool) and now - beat > 2 * interval
        out.append({**info, "stale": stale})
    return out


async def workers(rt: Runtime) -> list[dict[str, Any]]:
    """Registered workers with their ``stale`` flag."""
    return mark_stale(await rt.registry.list(), rt.broker.clock())


async def queues(rt: Runtime, live: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Inspector.queue_stats plus ``running`` from live (non-stale) workers."""
    stats = await rt.inspector.queue_stats()
    if live is None:
        live = [w for w in await workers(rt) if not w["stale"]]
    running: dict[str, int] = {}
    for w in live:
        for q, n in running_by_queue(w).items():
            running[q] = running.get(q, 0) + n
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
    # Running attempts whose worker did not say which queue still count.
    counts["running"] += sum(running_by_queue(w).get("", 0) for w in live)
    series = await rt.inspector.throughput(minutes)
    return {
        "time": rt.broker.clock(),
        "counts": counts,
        "queues": per_queue,
        "throughput": series,
        "workers": {"live": len(live), "stale": len(all_workers) - len(live)},
        "store": {"kind": rt.store.kind, "latency_ms": await ping(rt)},
        "uptime": max(0.0, time.time() - rt.started_at),
        "events": {"subscribers": rt.events.subscribers, "dropped": rt.events.dropped},
    }
