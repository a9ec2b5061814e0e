"""``nexq enqueue`` and ``nexq tasks list|show|cancel|retry``.

They go to the store, or through a running server's REST API (see
:mod:`.clients`); ``--json`` prints the API's task JSON for scripts.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from functools import partial
from typing import Any

import trio

from ..app import Nexq
from ..task import Status
from . import options
from .clients import Client, open_client
from .errors import UsageError


def add_parsers(sub: Any) -> None:
    enq = sub.add_parser("enqueue", help="enqueue one task")
    options.common(enq)
    options.client(enq)
    enq.add_argument("type", help="task type: the name a handler is registered under")
    enq.add_argument("--payload", default="null", help="JSON payload handed to the handler (default null)")
    enq.add_argument("--priority", type=options.priority, help="0-9 (higher first) or low/normal/high")
    enq.add_argument("--delay", type=options.non_negative, help="seconds to wait before running")
    enq.add_argument("--run-at", type=options.checked(_when),
                     help="when to run: ISO 8601 date-time (UTC if no offset) or unix seconds")
    enq.add_argument("--queue", help="queue name (default 'default')")
    enq.add_argument("--max-retries", type=options.retries, help="retries after the first attempt (0-1000)")
    enq.add_argument("--timeout", type=options.positive, help="seconds one attempt may run")
    enq.add_argument("--unique-key", help="while a live task holds this key, return it instead of a new one")
    enq.add_argument("--depends-on", type=options.checked(_ids),
                     help="comma-separated ids of tasks that must succeed first")

    tasks = sub.add_parser("tasks", help="list, show, cancel or retry tasks")
    options.common(tasks)
    options.client(tasks)
    tasks.add_argument("action", choices=["list", "show", "cancel", "retry"],
                       help="list: newest first; show/cancel/retry: the task with that ID")
    tasks.add_argument("id", nargs="?", help="task id (show, cancel, retry)")
    tasks.add_argument("--status", choices=[s.value for s in Status], help="list: only tasks in this state")
    tasks.add_argument("--type", help="list: only tasks of this type")
    tasks.add_argument("--queue", help="list: only tasks on this queue")
    tasks.add_argument("--limit", type=options.limit, default=20, help="list: at most this many (1-500, default 20)")


def _when(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    from ..api.validation import parse_datetime

    when = parse_datetime(text)
    if when is None:
        raise ValueError("not an ISO 8601 date-time (2026-12-01T09:30:00Z) or unix seconds")
    return when


def _ids(text: str) -> list[str]:
    ids = [i.strip() for i in text.split(",")]
    if not all(ids):
        raise ValueError("an empty id; separate ids with single commas")
    if len(set(ids)) != len(ids):
        raise ValueError("an id is listed twice")
    return ids


def _app(args: argparse.Namespace) -> Nexq:
    spec = options.settings_from(args).app
    return options.load_app(spec) if spec else Nexq()


def cmd_enqueue(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--payload is not valid JSON: {exc}") from None
    if args.delay is not None and args.run_at is not None:
        raise UsageError("give --delay or --run-at, not both")
    opts = {name: getattr(args, name) for name in (
        "priority", "delay", "run_at", "queue", "max_retries", "timeout", "unique_key", "depends_on")
        if getattr(args, name) is not None}
    app = _app(args)
    settings = options.settings_from(args, app)

    async def go() -> dict[str, Any]:
        async with open_client(settings, app) as client:
            return await client.enqueue(args.type, payload, opts)

    task = trio.run(go)
    if args.json:
        print(json.dumps(task, indent=2))
    elif task["created"]:
        print(f"enqueued {task['id']}  {task['type']} on queue {task['queue']}, "
              f"priority {task['priority']}, {task['status']}")
    else:
        print(f"not enqueued: live task {task['id']} ({task['status']}) holds unique key {task['unique_key']!r}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    if args.action == "list" and args.id:
        raise UsageError(f"nexq tasks list takes no task id (got {args.id!r}); "
                         f"to see that task: nexq tasks show {args.id}")
    if args.action != "list" and not args.id:
        raise UsageError(f"nexq tasks {args.action} needs a task id (ids are shown by `nexq tasks list`)")
    app = _app(args)
    settings = options.settings_from(args, app)
    trio.run(partial(_tasks, args, settings, app))
    return 0


async def _tasks(args: argparse.Namespace, settings: Any, app: Nexq) -> None:
    async with open_client(settings, app) as client:
        await _act(client, args)


async def _act(client: Client, args: argparse.Namespace) -> None:
    if args.action == "list":
        tasks = await client.list({"status": args.status, "type": args.type, "queue": args.queue,
                                   "limit": args.limit})
        if args.json:
            print(json.dumps(tasks, indent=2))
        for t in [] if args.json else tasks:
            print(f"{t['id']}  {t['status']:<10} {t['type']:<20} {t['queue']:<10} p{t['priority']}")
        return
    if args.action == "show":
        task = await client.get(args.id)
    elif args.action == "cancel":
        task = await client.cancel(args.id)
    else:
        task = await client.retry(args.id)
    if args.json:
        print(json.dumps(task, indent=2))
    elif args.action == "show":
        _show(task)
    else:
        verb = "cancelled" if args.action == "cancel" else "queued again"
        print(f"{verb}: task {task['id']} is {task['status']} (attempt {task['attempt']})")


def _time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else "-"


def _show(t: dict[str, Any]) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", t["id"]), ("type", t["type"]), ("status", t["status"]),
        ("queue", f"{t['queue']}, priority {t['priority']}"),
        ("attempt", f"{t['attempt']} (max retries {t.get('max_retries')})"),
        ("created", _time(t.get("created_at"))), ("scheduled", _time(t.get("scheduled_at"))),
        ("started", _time(t.get("started_at"))), ("finished", _time(t.get("finished_at"))),
        ("payload", json.dumps(t.get("payload"))),
    ]
    for name in ("unique_key", "depends_on", "children", "progress", "result"):
        if t.get(name) not in (None, [], {}):
            rows.append((name.replace("_", " "), json.dumps(t[name]) if not isinstance(t[name], str) else t[name]))
    if t.get("error"):
        rows.append(("error", f"{t['error'].get('type')}: {t['error'].get('message')}"))
    for name, value in rows:
        print(f"{name:<10} {value}")
