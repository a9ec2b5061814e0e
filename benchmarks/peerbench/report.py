"""The markdown report of a peers.py run (tables from its JSON document)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

# What every queue runs (Nexq through its public API and `nexq worker` processes).
PUBLIC = (("enqueue_seq", "enqueue, sequential"), ("enqueue_conc", "enqueue, 100 in flight"),
          ("enqueue_bulk", "bulk enqueue"), ("e2e", "processing, 2 worker processes"))
# Nexq's engine figures: trio in the producer's process, and Client from threads.
ENGINE = (("enqueue_seq_trio", "app.enqueue, sequential"), ("enqueue_conc_trio", "app.enqueue, 100 trio tasks"),
          ("enqueue_conc_threads", "Client.enqueue, 100 threads"), ("enqueue_bulk_trio", "app.enqueue_many"),
          ("e2e_inproc", "in-process Worker, end to end"))
LATENCY = (("p50_ms", "pick-up p50"), ("p99_ms", "pick-up p99"), ("max_ms", "pick-up max"))
PARTS = ("producer", "workers", "store")


def _median(vals: list[dict[str, Any]]) -> dict[str, Any]:
    """``vals[0]`` with each number (nested dicts too) the median over ``vals``."""
    out: dict[str, Any] = dict(vals[0])
    for k, v in vals[0].items():
        if isinstance(v, dict):
            out[k] = _median([g[k] for g in vals if isinstance(g.get(k), dict)])
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("n", "sent"):
            out[k] = statistics.median(g[k] for g in vals if g.get(k) is not None)
    return out


def merge_repeats(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run per label: each numeric field the median over the repeats that
    succeeded (``repeats`` keeps every value of the main field)."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_label.setdefault(r["label"], []).append(r)
    merged = []
    for rs in by_label.values():
        done = [r for r in rs if "skipped" not in r]
        if not done:
            merged.append(rs[0])
            continue
        m = {k: v for k, v in done[0].items() if k not in ("results", "seconds", "round")}
        m["repeats"] = len(done)
        m["results"] = {}
        for scen in {sc for r in done for sc in r.get("results", {})}:
            vals = [r["results"][scen] for r in done if scen in r.get("results", {})]
            good = [v for v in vals if "error" not in v]
            if not good:
                m["results"][scen] = vals[0]
                continue
            out = _median(good)
            main = "per_s" if "per_s" in out else "p50_ms"
            out["repeats"] = [g.get(main) for g in good]
            if len(good) < len(vals):
                out["failed_repeats"] = [v["error"] for v in vals if "error" in v]
            m["results"][scen] = out
        m["error"] = "; ".join(r["error"] for r in done if r.get("error")) or None
        merged.append(m)
    return merged


def _rate(r: dict[str, Any] | None) -> str:
    if r is None:
        return "—"
    if "error" in r:
        return "error¹"
    return f"{r['per_s']:,.0f}"


def _lat(r: dict[str, Any] | None) -> str:
    if r is None:
        return "—"
    if "error" in r:
        return "error¹"
    if not r.get("received"):
        return "none received"
    lost = r["sent"] - r["received"]
    return f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.0f}" + (f" ({lost} lost)" if lost else "")


def cpu_per_1000(r: dict[str, Any] | None, part: str = "total") -> float | None:
    """CPU seconds per 1,000 tasks of one part (or all) of a throughput result."""
    if not r or "error" in r or "cpu" not in r or r["cpu"].get(part) is None:
        return None
    return float(r["cpu"][part]) / r["n"] * 1000


def _cpu(r: dict[str, Any] | None, parts: bool = True) -> str:
    total = cpu_per_1000(r)
    if total is None:
        return "—"
    if not parts:
        return f"{total:.3f}"
    split = " / ".join(f"{v:.3f}" if (v := cpu_per_1000(r, p)) is not None else "—" for p in PARTS)
    return f"{total:.3f} ({split})"


def _ok(r: dict[str, Any] | None, key: str) -> float | None:
    if key == "cpu":
        return cpu_per_1000(r)
    if not r or "error" in r or r.get(key) is None:
        return None
    if key.endswith("_ms") and r.get("received", 0) < r.get("sent", 0):
        return None  # lost marks: no fair percentile
    return float(r[key])


def markdown(doc: dict[str, Any]) -> str:
    s = doc["sizes"]
    merged = merge_repeats(doc["runs"])
    runs = [r for r in merged if "skipped" not in r]
    lines = [
        "# Nexq beside other Python task queues",
        "",
        f"Machine: {doc['machine']}; {doc.get('redis_server', 'redis-server')}.",
        f"Run {doc['started']}, {doc['seconds']:.0f} s: `{doc['command']}`"
        + (". 1-minute load average before / after: {} / {} (other processes share the machine)".format(
            *doc["load_average"]) if doc.get("load_average") else "") + ".",
        "",
        (f"Sizes: {s['seq']:,} enqueues one at a time from a plain loop (asyncio queues: one coroutine); "
        f"{s['conc']:,} enqueues with {s['inflight']} in flight; {s['bulk']:,} bulk enqueues (batches of "
        f"{s['batch']:,}); processing: {s['e2e']:,} no-op jobs enqueued with the bulk path into 2 idle, "
        f"warmed-up worker processes, timed from the first enqueue until all {s['e2e']:,} recorded "
        f"themselves; pick-up latency (the producer's call → handler start) of {s['rate'] * s['duration']:,.0f} "
        f"tasks sent open loop at {s['rate']:,.0f}/s to idle workers. Every no-op job, in every queue, does one "
        f"blocking round trip to record itself (INCR of a counter on the store server); the producer counts "
        f"finished jobs by reading that counter. CPU: seconds of every process involved (the producer, every "
        f"worker process and its children, the store server; /proc utime + stime) per 1,000 tasks. Every "
        f"redis-backed queue got its own fresh redis-server (loopback, no persistence). Throughputs in "
        f"tasks/s; latencies in ms. Each figure is the median of {doc.get('repeat', 1)} rounds (every queue "
        f"once per round, round after round); every value is in the JSON."),
        "",
        "| queue | store | " + " | ".join(t for _, t in PUBLIC)
        + " | CPU s per 1,000 tasks processed: all (producer / workers / store) "
        "| pick-up p50 / p99 / max, 2 worker processes |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    errors = []
    for r in runs:
        res = r.get("results", {})
        if not any(k in res for k, _ in PUBLIC):
            continue  # the embedded store: engine figures only
        lines.append(f"| {r['label']} | {r.get('backend', '')} | "
                     + " | ".join(_rate(res.get(k)) for k, _ in PUBLIC)
                     + f" | {_cpu(res.get('e2e'))} | {_lat(res.get('latency'))} |")
    for r in runs:
        for name, v in r.get("results", {}).items():
            if "error" in v:
                errors.append(f"{r['label']}, {name}: {v['error']}")
            for e in v.get("failed_repeats", []):
                errors.append(f"{r['label']}, {name} (one repeat; the others' median is shown): {e}")
        if r.get("error"):
            errors.append(f"{r['label']}: {r['error']}")
    for r in merged:
        if "skipped" in r:
            lines.append(f"| {r['label']} | skipped: {r['skipped']} |" + " |" * 6)

    lines += ["", ("CPU s per 1,000 tasks, all processes, by scenario (enqueue scenarios: the producer and the "
                   "store server):"), "",
              "| queue | " + " | ".join(t for _, t in PUBLIC) + " |", "|---|" + "---:|" * len(PUBLIC)]
    for r in runs:
        res = r.get("results", {})
        if any(k in res for k, _ in PUBLIC):
            lines.append(f"| {r['label']} | " + " | ".join(_cpu(res.get(k), parts=False) for k, _ in PUBLIC) + " |")

    nexqs = [r for r in runs if r["peer"] == "nexq"]
    if nexqs:
        lines += ["", ("Nexq's engine figures (trio, in the producer's process; `Client` from 100 threads). "
                       "The in-process Worker runs no-op `bare` jobs (no recording round trip) counted by the "
                       "queue's succeeded counter, as in the runs before 2026-12-06:"), "",
                  "| store | " + " | ".join(t for _, t in ENGINE)
                  + " | CPU s per 1,000, in-process: all (process / — / store) | pick-up p50 / p99 / max, "
                  "in-process |", "|---|" + "---:|" * (len(ENGINE) + 2)]
        for r in nexqs:
            res = r.get("results", {})
            lines.append(f"| {r.get('backend', '')} | " + " | ".join(_rate(res.get(k)) for k, _ in ENGINE)
                         + f" | {_cpu(res.get('e2e_inproc'))} | {_lat(res.get('latency_inproc'))} |")

    if errors:
        lines += ["", "¹ Errors:", ""] + [f"- {e}" for e in errors]

    lines += ["", "Settings (the in-flight mode is how 100 enqueues were kept in flight):", "",
              "| queue | versions | workers | single enqueue | in flight by | bulk enqueue |",
              "|---|---|---|---|---|---|"]
    for r in runs:
        st, res = r.get("settings", {}), r.get("results", {})
        mode = st.get("in_flight") or (res.get("enqueue_conc") or {}).get("mode", "")
        lines.append(f"| {r['label']} | {st.get('version', '')} | {st.get('workers', '')} | {st.get('enqueue', '')} | "
                     f"{mode} | {st.get('bulk', '')} |")

    lines += ["", _ratios(runs), "", _targets(runs)]
    return "\n".join(lines) + "\n"


def _peers_and_nexqs(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    peers = [r for r in runs if r["peer"] != "nexq"]
    nexqs = [r for r in runs if r["peer"] == "nexq" and any(k in r.get("results", {}) for k, _ in PUBLIC)]
    return peers, nexqs


def best(peers: list[dict[str, Any]], scen: str, key: str, higher: bool,
         only: tuple[str, ...] = ()) -> tuple[str, float] | None:
    """The best peer's (label, value) of one figure (``only``: among those peers)."""
    vals = [(p["label"], _ok(p.get("results", {}).get(scen), key)) for p in peers if not only or p["peer"] in only]
    found = [(lbl, v) for lbl, v in vals if v is not None]
    if not found:
        return None
    return (max if higher else min)(found, key=lambda x: x[1])


def _fmt(key: str) -> Callable[[float], str]:
    if key == "per_s":
        return lambda v: f"{v:,.0f}/s"
    if key == "cpu":
        return lambda v: f"{v:.3f} s"
    return lambda v: f"{v:.1f} ms"


def _ratios(runs: list[dict[str, Any]]) -> str:
    peers, nexqs = _peers_and_nexqs(runs)
    if not peers or not nexqs:
        return ""
    out = [("Nexq against the best peer (throughput ratio > 1: Nexq is faster; latency and CPU ratio < 1: Nexq "
            "is quicker, uses less):"), "",
           "| figure | best peer | " + " | ".join(f"{n['label']} (ratio)" for n in nexqs) + " |",
           "|---|---|" + "---:|" * len(nexqs)]

    def row(title: str, scen: str, key: str, higher: bool) -> None:
        b = best(peers, scen, key, higher)
        if b is None:
            return
        fmt = _fmt(key)
        cells = []
        for n in nexqs:
            v = _ok(n.get("results", {}).get(scen), key)
            cells.append("—" if v is None or not b[1] else f"{fmt(v)} ({v / b[1]:.2f}×)")
        out.append(f"| {title} | {b[0]}: {fmt(b[1])} | " + " | ".join(cells) + " |")

    for scen, title in PUBLIC:
        row(title, scen, "per_s", True)
    row("CPU per 1,000 tasks processed, all processes", "e2e", "cpu", False)
    for key, title in LATENCY:
        row(title + ", 2 worker processes", "latency", key, False)
    return "\n".join(out)


# (title, scenario, key, higher is better, factor, compared peers (empty: all))
TARGETS = (
    ("sequential single enqueue (nexq.Client) ≥ 2x the fastest peer's", "enqueue_seq", "per_s", True, 2.0, ()),
    ("pick-up latency p50 ≤ Huey's", "latency", "p50_ms", False, 1.0, ("huey",)),
    ("pick-up latency p99 ≤ Huey's", "latency", "p99_ms", False, 1.0, ("huey",)),
    ("processing with 2 worker processes ≥ 3x the fastest peer", "e2e", "per_s", True, 3.0, ()),
    ("CPU per 1,000 tasks processed, all processes ≤ 1/4 of the most frugal peer's", "e2e", "cpu", False, 0.25, ()),
    ("asyncio client (nexq.AsyncClient), 100 in flight ≥ 3x SAQ's and arq's", "enqueue_conc", "per_s", True, 3.0,
     ("saq", "arq")),
)


def _targets(runs: list[dict[str, Any]]) -> str:
    peers, nexqs = _peers_and_nexqs(runs)
    if not peers or not nexqs:
        return ""
    out = ["Targets (issue \"Performance, round two\"; the blocking client's sequential enqueue is the first row):",
           "", "| target | reference | bound | " + " | ".join(n["label"] for n in nexqs) + " |",
           "|---|---|---:|" + "---|" * len(nexqs)]
    for title, scen, key, higher, factor, only in TARGETS:
        b = best(peers, scen, key, higher, only)
        if b is None:
            continue
        fmt, bound = _fmt(key), b[1] * factor
        cells = []
        for n in nexqs:
            v = _ok(n.get("results", {}).get(scen), key)
            if v is None:
                cells.append("—")
                continue
            met = v >= bound if higher else v <= bound
            cells.append(f"{fmt(v)} ({v / b[1]:.2f}×): {'met' if met else '**missed**'}")
        out.append(f"| {title} | {b[0]}: {fmt(b[1])} | {fmt(bound)} | " + " | ".join(cells) + " |")
    return "\n".join(out)
