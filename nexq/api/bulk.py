"""Bulk actions on tasks: cancel, retry (run again) or delete many at once,
named by id or found by a listing filter.

Bounded per call: at most ``MAX_BULK`` tasks, and with a filter at most
``BULK_WALK`` index entries walked; the answer's ``next_cursor`` says where
to go on. Each task is acted on as the single-task routes do, a few at a
time; a task that cannot take the action (unknown, wrong state, changed
meanwhile) is reported in ``failed`` with why, and the others go ahead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from ..queue.gather import gather
from ..queue.search import SCAN_LIMIT, TaskFilter
from ..runtime.runtime import Runtime
from ..task import Task
from .schemas_ops import BULK_WALK

CONCURRENCY = 32  # actions in flight at once
LISTED_FAILURES = 100
READ_CHUNK = 1_000

# What each action needs of a task's status, and what to say otherwise.
_ELIGIBLE: dict[str, tuple[Callable[[Task], bool], str]] = {
    "cancel": (lambda t: not t.status.terminal, "already ended"),
    "retry": (lambda t: t.status.terminal, "has not ended (only dead, cancelled or succeeded tasks run again)"),
    "delete": (lambda t: True, ""),
}


def _doer(rt: Runtime, action: str) -> Callable[[str], Awaitable[bool]]:
    if action == "cancel":
        return rt.broker.cancel
    if action == "retry":
        return rt.inspector.requeue
    return rt.inspector.delete


async def by_ids(rt: Runtime, ids: Sequence[str]) -> tuple[list[Task], list[dict[str, Any]]]:
    """The tasks of ``ids`` (each once), and a failure for each unknown one."""
    unique = list(dict.fromkeys(ids))
    tasks: list[Task] = []
    failed: list[dict[str, Any]] = []
    for lo in range(0, len(unique), READ_CHUNK):
        chunk = unique[lo : lo + READ_CHUNK]
        # Ids no task can have are not looked up (as the single-task routes).
        wellformed = [i for i in chunk if not any(c in i for c in "|,:")]
        found = dict(zip(wellformed, await rt.inspector.get_many(wellformed))) if wellformed else {}
        for i in chunk:
            t = found.get(i)
            if t is None:
                failed.append({"id": i, "error": "not found", "status": None})
            else:
                tasks.append(t)
    return tasks, failed


async def by_filter(rt: Runtime, where: TaskFilter, limit: int,
                    cursor: str | int | None) -> tuple[list[Task], str | int | None]:
    """Up to ``limit`` tasks a listing with ``where`` shows from ``cursor``,
    walking at most :data:`BULK_WALK` index entries; and the cursor after
    them (None: the end of the index)."""
    tasks: list[Task] = []
    for _ in range(max(1, BULK_WALK // SCAN_LIMIT)):
        page = await rt.inspector.find(where, limit=min(500, limit - len(tasks)), cursor=cursor)
        tasks += page.tasks
        cursor = page.next_cursor
        if cursor is None or len(tasks) >= limit:
            break
    return tasks, cursor


async def apply(rt: Runtime, action: str, tasks: Sequence[Task]) -> tuple[int, list[dict[str, Any]]]:
    """Apply ``action`` to each task; how many it was applied to, and the
    failures (id, error, status as read before)."""
    ok, why = _ELIGIBLE[action]
    act = _doer(rt, action)
    failed: list[dict[str, Any]] = []
    done = 0
    limiter = trio.CapacityLimiter(CONCURRENCY)

    async def one(t: Task) -> None:
        nonlocal done
        if not ok(t):
            failed.append({"id": t.id, "error": f"{t.status.value}: {why}", "status": t.status.value})
            return
        async with limiter:
            if await act(t.id):
                done += 1
            else:
                failed.append({"id": t.id, "error": "changed meanwhile (ended, requeued or deleted)",
                               "status": t.status.value})

    await gather(one, tasks)  # a store error ends the call as itself (a 503), not as a group
    return done, failed


def answer(action: str, matched: int, done: int, failed: list[dict[str, Any]],
           next_cursor: str | int | None) -> dict[str, Any]:
    return {"action": action, "matched": matched, "done": done, "failed": failed[:LISTED_FAILURES],
            "failed_count": len(failed), "next_cursor": next_cursor}
