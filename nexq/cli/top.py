"""``nexq top``: a live view of queues, rates and workers in the terminal.

For operators who live in a shell, like ``celery events`` or ``rq info
--interval``. Every ``--interval`` seconds it reads what the dashboard's
overview reads (``GET /api/stats`` and ``/api/workers`` through ``--api``
or the ``nexq run`` holding ``--data-dir``, else the store itself, as ``nexq
tasks`` does) and shows, per queue, the tasks pending, scheduled and running
and how many succeeded and failed per minute over the last interval; the
store-wide throughput of the last full minute; and the workers. On a
terminal each frame replaces the last (ANSI clear); piped, frames follow one
another. ``--once`` prints one frame (its rates measured over one interval)
and exits; ``--json`` prints each frame as one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any, TextIO

import trio

from ..app import Nexq
from ..config import Settings
from ..errors import StoreError
from . import options
from .clients import Client, open_client
from .errors import CliError, unwrap

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen
Sample = tuple[dict[str, Any], list[dict[str, Any]], float]  # stats, workers, monotonic time


def add_parser(sub: Any) -> None:
    top = sub.add_parser("top", help="live view of queues, rates and workers, refreshed every --interval")
    options.common(top)
    options.client(top)
    top.add_argument("--interval", type=options.positive, default=2.0,
                     help="seconds between refreshes; rates are measured over it (default 2)")
    top.add_argument("--once", action="store_true", help="print one frame and exit")


def cmd_top(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (or one frame with ``--once``); returns the exit code."""
    spec = options.settings_from(args).app
    app = options.load_app(spec) if spec else Nexq()
    settings = options.settings_from(args, app)
    out = sys.stdout
    try:
        trio.run(partial(_top, args, settings, app, out))
    except BaseException as exc:
        why = unwrap(exc)
        if isinstance(why, KeyboardInterrupt):
            return 0  # Ctrl-C is how a live view ends
        if isinstance(why, BrokenPipeError):  # `nexq top | head`: the reader is done
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            return 0
        raise
    return 0


async def _top(args: argparse.Namespace, settings: Settings, app: Nexq, out: TextIO) -> None:
    tty = out.isatty() and not args.json
    show = partial(_show, out, tty, args.json, _source(settings), args.interval)
    async with open_client(settings, app) as client:
        prev = await _sample(client)
        if args.once:
            await trio.sleep(args.interval)
            show(frame(prev, await _sample(client)))
            return
        last, shown = prev, frame(None, prev)
        show(shown)
        while True:
            await trio.sleep(args.interval)
            try:
                cur = await _sample(client)
            except (CliError, StoreError) as exc:  # keep watching: it may come back
                show(shown, f"update failed: {exc}; retrying every {args.interval:g} s")
                continue
            last, shown = cur, frame(last, cur)
            show(shown)


async def _sample(client: Client) -> Sample:
    return await client.stats(2), await client.workers(), time.monotonic()


def _lifetime(queue: dict[str, Any]) -> tuple[int | None, int | None]:
    """A queue's lifetime (succeeded tasks, failed attempts), for rates."""
    totals = queue.get("totals") or {}
    return totals.get("succeeded", queue.get("succeeded")), totals.get("failed_attempts")


def _per_minute(now: int | None, before: int | None, seconds: float) -> float | None:
    if now is None or before is None or seconds <= 0:
        return None
    return round(max(0, now - before) * 60 / seconds, 1)


def frame(prev: Sample | None, cur: Sample) -> dict[str, Any]:
    """One frame as JSON-able data; rates are per minute over ``prev`` ->
    ``cur`` (None without ``prev``)."""
    stats, workers, at = cur
    seconds = at - prev[2] if prev is not None else 0.0
    before = {q["name"]: _lifetime(q) for q in prev[0]["queues"]} if prev is not None else {}
    queues = []
    for q in stats["queues"]:
        succeeded, failed = _lifetime(q)
        was = before.get(q["name"], (None, None))
        queues.append({
            "name": q["name"], "paused": bool(q.get("paused")), "pending": q.get("pending", 0),
            "scheduled": q.get("scheduled", 0), "running": q.get("running", 0), "dead": q.get("dead", 0),
            "succeeded_per_min": _per_minute(succeeded, was[0], seconds),
            "failed_per_min": _per_minute(failed, was[1], seconds),
        })
    series = stats.get("throughput") or []
    return {
        "time": stats.get("time"), "interval": round(seconds, 3), "counts": stats.get("counts", {}),
        # store-wide: the minute so far, and the last full one
        "this_minute": series[-1] if series else None, "last_minute": series[-2] if len(series) >= 2 else None,
        "queues": queues, "store": stats.get("store", {}),
        "workers": [{
            "id": w["id"], "host": w.get("host"), "pid": w.get("pid"), "queues": w.get("queues", []),
            "concurrency": w.get("concurrency"), "running": len(w.get("running", [])),
            "processed": w.get("processed", 0), "failed": w.get("failed", 0), "stale": w.get("stale", False),
        } for w in workers],
    }


def _source(settings: Settings) -> str:
    if settings.api:
        return settings.api
    if settings.store:
        return ",".join(str(n) for n in settings.store_nodes)  # passwords masked
    return f"the nexq run holding {settings.data_dir}"


def _show(out: TextIO, tty: bool, as_json: bool, source: str, interval: float, data: dict[str, Any],
          warning: str | None = None) -> None:
    if as_json:
        print(json.dumps({**data, "warning": warning} if warning else data), file=out, flush=True)
        return
    height = shutil.get_terminal_size().lines if tty else None
    text = render(data, source, interval, warning, height)
    print(CLEAR + text if tty else text + "\n", file=out, end="" if tty else "\n", flush=True)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def render(f: dict[str, Any], source: str, interval: float, warning: str | None = None,
           height: int | None = None) -> str:
    """The frame as plain text; at most ``height`` lines (workers are cut first)."""
    when = datetime.fromtimestamp(f["time"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if f.get("time") else ""
    c, store = f["counts"], f.get("store", {})
    lines = [f"nexq top - {source} - {when} - every {interval:g} s (Ctrl-C quits)"]
    if warning:
        lines.append(f"!! {warning}")
    now, m = f.get("this_minute") or {}, f.get("last_minute") or {}
    rate = (f"this minute {now.get('processed', 0)} succeeded, {now.get('failed', 0)} failed; "
            f"last minute {m.get('processed', 0)}, {m.get('failed', 0)}")
    latency = f", store {store['latency_ms']:g} ms" if store.get("latency_ms") is not None else ""
    lines += [(f"tasks: {c.get('pending', 0)} pending, {c.get('scheduled', 0)} scheduled, "
               f"{c.get('running', 0)} running, {c.get('dead', 0)} dead | {rate}{latency}"), ""]
    lines.append(f"{'QUEUE':<20} {'PENDING':>8} {'SCHEDULED':>9} {'RUNNING':>8} {'SUCC/MIN':>9} "
                 f"{'FAIL/MIN':>9} {'DEAD':>6}")
    for q in f["queues"]:
        lines.append(f"{q['name'][:20]:<20} {q['pending']:>8} {q['scheduled']:>9} {q['running']:>8} "
                     f"{_num(q['succeeded_per_min']):>9} {_num(q['failed_per_min']):>9} {q['dead']:>6}"
                     + ("  paused" if q["paused"] else ""))
    if not f["queues"]:
        lines.append("(no queues yet)")
    workers = f["workers"]
    stale = sum(1 for w in workers if w["stale"])
    lines += ["", f"WORKERS: {len(workers) - stale} live, {stale} stale",
              f"{'ID':<32} {'HOST':<16} {'PID':>7} {'RUN/CONC':>9} {'DONE':>8} {'FAILED':>7}  QUEUES"]
    rows = [f"{w['id'][:32]:<32} {str(w['host'])[:16]:<16} {_num(w['pid']):>7} "
            f"{str(w['running']) + '/' + _num(w['concurrency']):>9} {w['processed']:>8} {w['failed']:>7}  "
            f"{','.join(w['queues'])}" + ("  stale" if w["stale"] else "") for w in workers]
    rows = rows or ["(no workers registered)"]
    room = len(rows) if height is None else max(0, height - len(lines) - 1)
    if len(rows) > room:
        rows = [*rows[: max(0, room - 1)], f"... {len(rows) - max(0, room - 1)} more"]
    return "\n".join(lines + rows)
