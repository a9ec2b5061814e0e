"""Per task type: count, outcomes, success rate, runtime and queue-wait
percentiles, overall and per time bucket (what Flower and Sidekiq show).

Computed from samples of the newest tasks (:mod:`nexq.queue.samples`):
the workers' own records of each attempt, read off the hot path when the
page asks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..queue.samples import Sample

BUCKETS = 12  # points of each series over the window


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0-100) of ascending values; None if empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _figures(samples: Sequence[Sample]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    for s in samples:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    ended = statuses.get("succeeded", 0) + statuses.get("dead", 0)
    runtimes = sorted(s.runtime for s in samples if s.runtime is not None)
    waits = sorted(s.wait for s in samples if s.wait is not None)
    return {
        "count": len(samples),
        "statuses": statuses,
        "success_rate": statuses.get("succeeded", 0) / ended if ended else None,
        "runtime": {f"p{q}": percentile(runtimes, q) for q in (50, 95, 99)},
        "wait": {f"p{q}": percentile(waits, q) for q in (50, 95, 99)},
    }


def summarize(samples: Sequence[Sample], start: float, end: float, complete: bool) -> dict[str, Any]:
    """The answer of ``GET /api/types/stats`` for samples of tasks created
    in [start, end]: each type's figures (most tasks first) and a series of
    :data:`BUCKETS` buckets by creation time, oldest first."""
    width = max(1.0, (end - start) / BUCKETS)
    by_type: dict[str, list[Sample]] = {}
    for s in samples:
        by_type.setdefault(s.type, []).append(s)
    types = []
    for name, group in sorted(by_type.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        buckets: list[list[Sample]] = [[] for _ in range(BUCKETS)]
        for s in group:
            buckets[min(BUCKETS - 1, max(0, int((s.created_at - start) // width)))].append(s)
        series = []
        for i, b in enumerate(buckets):
            f = _figures(b)
            series.append({"t": start + i * width, "count": f["count"],
                           "succeeded": f["statuses"].get("succeeded", 0), "dead": f["statuses"].get("dead", 0),
                           "success_rate": f["success_rate"], "runtime": f["runtime"], "wait": f["wait"]})
        types.append({"type": name, **_figures(group), "series": series})
    return {
        "window": {"from": start, "to": end, "bucket": width, "sampled": len(samples), "complete": complete},
        "types": types,
    }
