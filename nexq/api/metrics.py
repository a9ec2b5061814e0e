"""``GET /metrics``: Prometheus text exposition (format 0.0.4).

Everything is read from the store at scrape time, so any API process shows
the whole deployment. Current states are gauges (``nexq_tasks{queue,status}``:
the same counts as the listing, so ended tasks leave them when deleted or
expired); lifetime totals are counters named ``*_total``, from counts the
store only ever increments; rolling per-minute sums are gauges with their
window in the name. Handler durations are a true histogram when this
process has run attempts (its runtime's :class:`Histogram`), else gauges
of a sample of the newest finished attempts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from quart import Response

from ..runtime.histogram import Histogram
from ..runtime.runtime import Runtime
from .routing import Routes
from .state import current_runtime
from .stats import STATUS_KEYS, ping, queues, workers

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RECENT_TASKS = 200  # tasks sampled for recent durations when no histogram is kept
# counter name, field of a queue's lifetime ``totals``, what it counts
LIFETIME_TOTALS = (
    ("nexq_tasks_processed_total", "succeeded", "Tasks that succeeded"),
    ("nexq_tasks_dead_total", "dead", "Tasks that ran out of retries"),
    ("nexq_tasks_cancelled_total", "cancelled", "Tasks cancelled (on request, by a deadline or a parent)"),
    ("nexq_attempts_failed_total", "failed_attempts", "Attempts that failed, timed out or were lost"),
)

routes = Routes()


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if isinstance(v, float) and not v.is_integer() else str(int(v))


class Exposition:
    """Builds the text format family by family."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.sample(name, labels, value)

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        self.lines.append(f"{name}{{{lab}}} {_num(value)}" if lab else f"{name} {_num(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    idx = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[idx]


async def _recent_durations(rt: Runtime) -> list[float]:
    page = await rt.inspector.list(limit=RECENT_TASKS)
    out = []
    for t in page.tasks:
        for a in t.attempts:
            if a.started_at is not None and a.finished_at is not None and a.outcome is not None \
                    and a.outcome.value in ("succeeded", "failed", "timeout"):
                out.append(max(0.0, a.finished_at - a.started_at))
    return sorted(out)


async def render(rt: Runtime) -> str:
    """The whole exposition; raises StoreUnavailable if the store is down."""
    ex = Exposition()
    all_workers = await workers(rt)
    live = [w for w in all_workers if not w["stale"]]
    per_queue = await queues(rt, live)
    ex.family("nexq_tasks", "gauge",
              "Tasks by queue and status (pending: ready in lanes; running: reported by live workers).",
              (({"queue": q["name"], "status": s}, q.get(s, 0)) for q in per_queue for s in STATUS_KEYS))
    ex.family("nexq_queue_depth", "gauge", "Ready tasks waiting in a queue, by priority.",
              (({"queue": q["name"], "priority": str(p)}, n)
               for q in per_queue for p, n in sorted(q["depth_by_priority"].items())))
    ex.family("nexq_queue_paused", "gauge", "1 if the queue is paused.",
              (({"queue": q["name"]}, int(q["paused"])) for q in per_queue))
    for name, field, what in LIFETIME_TOTALS:
        ex.family(name, "counter", f"{what}, per queue, since the store was created.",
                  (({"queue": q["name"]}, q["totals"][field]) for q in per_queue))
    series = await rt.inspector.throughput(60)
    ex.family("nexq_tasks_processed_last_hour", "gauge",
              "Tasks that succeeded in the last 60 minutes (all queues).",
              [({}, sum(m["processed"] for m in series))])
    ex.family("nexq_attempts_failed_last_hour", "gauge",
              "Attempts that failed in the last 60 minutes (all queues).",
              [({}, sum(m["failed"] for m in series))])
    ex.family("nexq_workers", "gauge", "Registered worker processes (stale: missed 2 heartbeats).",
              [({"state": "live"}, len(live)), ({"state": "stale"}, len(all_workers) - len(live))])
    ex.family("nexq_store_ping_seconds", "gauge", "Round trip of one store ping from this API.",
              [({"store": rt.store.kind}, (await ping(rt)) / 1000)])
    _store_guards(ex, rt)
    ex.family("nexq_event_stream_subscribers", "gauge", "Open event streams in this process.",
              [({}, rt.events.subscribers)])
    ex.family("nexq_events_dropped_total", "counter",
              "Events this process dropped for slow subscribers.", [({}, rt.events.dropped)])
    _durations(ex, rt.handler_durations, await _recent_durations(rt))
    return ex.text()


def _store_guards(ex: Exposition, rt: Runtime) -> None:
    """Evictions detected and admission control, per store node (this process's view)."""
    nodes = list(zip(rt.node_names, rt.guards))
    limited = [(n, g.accounting) for n, g in nodes if g.accounting.budget is not None]
    ex.family("nexq_store_evictions_detected_total", "counter",
              "Canary keys this process found evicted from the store: other keys, tasks among them, "
              "may have been lost.", (({"node": n}, g.evicted) for n, g in nodes))
    ex.family("nexq_admission_refusing", "gauge", "1 while the node refuses new tasks (store full).",
              (({"node": n}, int(g.refusing is not None)) for n, g in nodes))
    ex.family("nexq_admission_refused_total", "counter",
              "Enqueue calls this process refused with store_full.", (({"node": n}, g.accounting.refused)
                                                                      for n, g in nodes))
    ex.family("nexq_admission_accounted_bytes", "gauge",
              "Nexq's estimate of its bytes in the store: live tasks, and ended ones until they expire.",
              (({"node": n}, a.accounted) for n, a in limited))
    ex.family("nexq_admission_budget_bytes", "gauge",
              "--store-memory-limit less the head room: enqueues that would pass it are refused.",
              (({"node": n}, a.budget or 0) for n, a in limited))


def _durations(ex: Exposition, hist: Histogram, recent: list[float]) -> None:
    if hist.count > 0:
        name = "nexq_handler_duration_seconds"
        ex.lines += [f"# HELP {name} Handler run time of attempts run by this process.",
                     f"# TYPE {name} histogram"]
        cumulative = 0
        for bound, n in zip((*hist.bounds, math.inf), hist.counts):
            cumulative += n
            ex.sample(f"{name}_bucket", {"le": _num(bound)}, cumulative)
        ex.sample(f"{name}_sum", {}, hist.total)
        ex.sample(f"{name}_count", {}, hist.count)
        return
    # No process-level histogram here: a sample of the newest finished
    # attempts, exposed as gauges since it is not cumulative.
    name = "nexq_recent_handler_duration_seconds"
    ex.family(name, "gauge",
              f"Run time quantiles of the last finished attempt of the newest {RECENT_TASKS} tasks.",
              [({"quantile": str(q)}, _quantile(recent, q)) for q in (0.5, 0.9, 0.99)] if recent else [])
    ex.family(f"{name}_samples", "gauge", "Attempts behind nexq_recent_handler_duration_seconds.",
              [({}, len(recent))])


@routes.route("GET", "/metrics", summary="Prometheus metrics", tag="metrics",
              content_type="text/plain", responses={200: {"type": "string"}})
async def scrape() -> Response:
    return Response(await render(current_runtime()), mimetype="text/plain", content_type=CONTENT_TYPE)
