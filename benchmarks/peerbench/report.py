"""The markdown report of a peers.py run (tables from its JSON document)."""

from __future__ import annotations

import statistics
from typing import Any

THROUGHPUT = (("enqueue_seq", "enqueue, sequential"), ("enqueue_conc", "enqueue, in flight"),
              ("enqueue_bulk", "bulk enqueue"), ("e2e", "end to end, worker processes"))
LATENCY = (("p50_ms", "pick-up p50"), ("p99_ms", "pick-up p99"), ("max_ms", "pick-up max"))


def merge_repeats(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run per label: each numeric field the median over the repeats that
    succeeded (``repeats`` keeps every value of the main field)."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_label.setdefault(r["label"], []).append(r)
    merged = []
    for label, rs in by_label.items():
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
            out: dict[str, Any] = dict(good[0])
            for k, v in good[0].items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("n", "sent"):
                    out[k] = statistics.median(g[k] for g in good if g.get(k) is not None)
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


def _ok(r: dict[str, Any] | None, key: str) -> float | None:
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
        f"Sizes: {s['seq']:,} sequential enqueues; {s['conc']:,} enqueues with {s['inflight']} in flight; "
        f"{s['bulk']:,} bulk enqueues (batches of {s['batch']:,}); {s['e2e']:,} no-op tasks end to end "
        f"(from the first enqueue until the queue's own bookkeeping counts all done; the producer uses "
        f"the bulk path); pick-up latency (enqueue time → handler start) of {s['rate'] * s['duration']:,.0f} "
        f"tasks sent open loop at {s['rate']:,.0f}/s to idle workers. Every redis-backed queue got its own "
        f"fresh redis-server (loopback, no persistence). Throughputs in tasks/s; latencies in ms. "
        f"Each figure is the median of {doc.get('repeat', 1)} rounds (every queue once per round, "
        f"round after round); every value is in the JSON.",
        "",
        "| queue | store | enqueue, sequential | enqueue, in flight | bulk enqueue | end to end, "
        "worker processes | end to end, in-process worker | pick-up p50 / p99 / max, worker processes "
        "| pick-up p50 / p99 / max, in-process |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    errors = []
    for r in runs:
        res = r.get("results", {})
        lines.append(
            f"| {r['label']} | {r.get('backend', '')} | {_rate(res.get('enqueue_seq'))} | "
            f"{_rate(res.get('enqueue_conc'))} | {_rate(res.get('enqueue_bulk'))} | {_rate(res.get('e2e'))} | "
            f"{_rate(res.get('e2e_inproc'))} | {_lat(res.get('latency'))} | {_lat(res.get('latency_inproc'))} |")
        for name, v in res.items():
            if "error" in v:
                errors.append(f"{r['label']}, {name}: {v['error']}")
            for e in v.get("failed_repeats", []):
                errors.append(f"{r['label']}, {name} (one repeat; the others' median is shown): {e}")
        if r.get("error"):
            errors.append(f"{r['label']}: {r['error']}")
    for r in merged:
        if "skipped" in r:
            lines.append(f"| {r['label']} | skipped: {r['skipped']} | | | | | | | |")
    if errors:
        lines += ["", "¹ Errors:", ""] + [f"- {e}" for e in errors]

    lines += ["", "Settings (the in-flight mode is how 100 enqueues were kept in flight):", "",
              "| queue | versions | workers | in flight by | bulk enqueue | completion counted by |",
              "|---|---|---|---|---|---|"]
    for r in runs:
        st, res = r.get("settings", {}), r.get("results", {})
        mode = (res.get("enqueue_conc") or {}).get("mode", "")
        lines.append(f"| {r['label']} | {st.get('version', '')} | {st.get('workers', '')} | {mode} | "
                     f"{st.get('bulk', '')} | {st.get('done', '')} |")

    lines += ["", _ratios(runs)]
    return "\n".join(lines) + "\n"


def _ratios(runs: list[dict[str, Any]]) -> str:
    peers = [r for r in runs if r["peer"] != "nexq"]
    nexqs = [r for r in runs if r["peer"] == "nexq"]
    if not peers or not nexqs:
        return ""
    head = "| scenario | fastest peer | " + " | ".join(f"{n['label']} (ratio)" for n in nexqs) + " |"
    out = ["Nexq against the fastest peer (throughput ratio > 1: Nexq is faster; latency ratio < 1: Nexq "
           "is quicker). For the embedded store, end to end and latency are its in-process figures.", "",
           head, "|---|---|" + "---:|" * len(nexqs)]

    def row(title: str, scen: str, key: str, higher: bool) -> None:
        vals = [(p["label"], _ok(p.get("results", {}).get(scen), key)) for p in peers]
        vals = [(lbl, v) for lbl, v in vals if v is not None]
        if not vals:
            return
        best_lbl, best = (max if higher else min)(vals, key=lambda x: x[1])
        fmt = (lambda v: f"{v:,.0f}") if higher else (lambda v: f"{v:.1f} ms")
        cells = []
        for n in nexqs:
            res = n.get("results", {})
            v = _ok(res.get(scen), key)
            if v is None and scen in ("e2e", "latency"):
                v = _ok(res.get(scen + "_inproc"), key)
            cells.append("—" if v is None or not best else f"{fmt(v)} ({v / best:.2f}×)")
        out.append(f"| {title} | {best_lbl}: {fmt(best)} | " + " | ".join(cells) + " |")

    for scen, title in THROUGHPUT:
        row(title, scen, "per_s", True)
    for key, title in LATENCY:
        row(title + ", worker processes", "latency", key, False)
    return "\n".join(out)
