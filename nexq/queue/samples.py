"""Recent tasks as samples for per-type figures (runtime, queue wait, outcome).

Read from what workers already record, off the hot path: the listing index
is walked newest first (:meth:`Inspector.chunk`, every attempt's ``fin``
record with its start and end) until the tasks are older than the window
or ``limit`` tasks were sampled, and at most ``walk`` index entries.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

import attrs

from ..task import Outcome, Task
from .search import TaskFilter

if TYPE_CHECKING:
    from .inspect import Inspector

MAX_SAMPLE = 10_000  # tasks one call may sample
WALK_FACTOR = 4  # index entries walked per task sampled, at most (holes, deleted tasks)


@attrs.frozen
class Sample:
    """One task, reduced: ``runtime`` is how long its succeeding attempt ran;
    ``wait`` how long its first attempt waited from when it was due (its
    run_at, else its enqueue) to its start; None when unknown (not run yet,
    or waiting for parent tasks, whose end is not recorded)."""

    type: str
    queue: str
    created_at: float
    status: str
    runtime: float | None
    wait: float | None


def sample_of(t: Task) -> Sample:
    runtime = wait = None
    for a in t.attempts:
        if a.outcome is Outcome.SUCCEEDED and a.started_at is not None and a.finished_at is not None:
            runtime = max(0.0, a.finished_at - a.started_at)
    started = next((a.started_at for a in t.attempts if a.started_at is not None), None)
    if started is not None and not t.spec.depends_on:
        due = t.spec.run_at if t.spec.run_at is not None else t.spec.created_at
        wait = max(0.0, started - due)
    return Sample(t.spec.type, t.spec.queue, t.spec.created_at, t.status.value, runtime, wait)


async def recent(inspector: Inspector, since: float, limit: int) -> tuple[builtins.list[Sample], bool]:
    """Samples of the newest tasks created at or after ``since`` (at most
    ``limit``, newest first) and whether they are all of them (the walk
    reached older tasks or the start of the index)."""
    limit = max(1, min(limit, MAX_SAMPLE))
    where = TaskFilter(created_after=since)
    n = int(await inspector.store.get(inspector.keys.seq) or 0)
    out: builtins.list[Sample] = []
    walked = 0
    while n > 0:
        if walked >= limit * WALK_FACTOR:
            return out, False
        lo, chunk = await inspector.chunk(n, detail=True)
        walked += n - lo
        n = lo
        for t in chunk:
            if where.matches(t):
                if len(out) >= limit:
                    return out, False
                out.append(sample_of(t))
        if where.past(chunk):
            break
    return out, True
