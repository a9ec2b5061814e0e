"""Read and admin model shared by the API, CLI and dashboard.

A task's status is derived from its keys: ``cur`` names the current attempt
and its state; a decided ``fin`` for that attempt or a live ``lease`` takes
precedence (they are written before ``cur`` follows them). Listing walks the
``idx:{n}`` index newest first in chunks; no KEYS or SCAN anywhere.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..codec import (
    decode_attempt,
    decode_cur,
    decode_spec,
    encode_cur,
    encode_spec,
    loads,
)
from ..keys import MARKER_MS, TERMINAL_STATES, State
from ..store import Batch
from ..task import Attempt, Outcome, Status, Task, TaskSpec
from .counts import TERMINAL, total
from .lanes import PRIORITIES, Ref, depth_keys, push
from .lanes import depth as lane_depth
from .orphans import adopt as adopt_orphans
from .orphans import adoptable, ended
from .outcomes import lease_holder
from .samples import Sample, recent
from .search import SCAN_CHUNK, SCAN_LIMIT, TaskFilter
from .workflow import children

if TYPE_CHECKING:
    from .node import NodeBroker

# cnt:{q}:{state}: tasks waiting for their time now; the rest lifetime totals
LIFETIME = (State.SCHEDULED.value, *TERMINAL, "failed")


@attrs.frozen
class Page:
    tasks: list[Task]
    next_cursor: int | str | None


class Inspector:
    """Queries and admin actions over one node broker's keys."""

    def __init__(self, node: NodeBroker) -> None:
        self.node, self.store, self.keys = node, node.store, node.keys

    async def get(self, task_id: str) -> Task | None:
        """Everything about one task, or None if unknown or expired."""
        [task] = await self._load([task_id], detail=True, adopt=True)
        if task is not None:
            kids = await children(self.store, self.keys, task_id)
            if kids:
                task = attrs.evolve(task, children=tuple(kids))
        return task

    async def get_many(self, task_ids: Sequence[str]) -> builtins.list[Task | None]:
        """:meth:`get` for many ids in two round trips; None for each unknown one."""
        return await self._load(list(task_ids), detail=True, adopt=True)

    async def _load(self, ids: Sequence[str], detail: bool = False,
                    adopt: bool = False) -> builtins.list[Task | None]:
        """Tasks by id (None for an unknown one). ``adopt``: the ids came
        from a caller, not from the index, so also check that each live
        task is indexed and adopt the orphans (:mod:`.orphans`), in the
        same round trips."""
        k = self.keys
        names = []
        width = 4 if detail else 3
        for tid in ids:
            names += [k.spec(tid), k.cur(tid), k.progress(tid)]
            if detail:
                names.append(k.hooks(tid))
        raw = await self.store.mget(names) if names else []
        heads = [(raw[width * i], raw[width * i + 1], raw[width * i + 2]) for i in range(len(ids))]
        hooks = [raw[width * i + 3] if detail else None for i in range(len(ids))]
        b = Batch()
        shape: builtins.list[int] = []
        suspects: builtins.list[TaskSpec] = []
        for tid, (spec_raw, cur_raw, _) in zip(ids, heads):
            if adopt and spec_raw is not None and (cur_raw is None or not ended(cur_raw)):
                suspects.append(decode_spec(spec_raw))
            if spec_raw is None or cur_raw is None:
                shape.append(0)
                continue
            a = decode_cur(cur_raw)[0]
            firsts = range(1, a + 1) if detail else [a]
            b.mget([k.lease(tid, a), *[k.fin(tid, n) for n in firsts]])
            shape.append(1)
        asked = len(b)
        for spec in suspects:
            b.get(self.keys.index(spec.seq))
        more = await self.store.execute(b) if len(b) else []
        if suspects:
            now = self.node.clock()
            await adopt_orphans(self.node.ctx, [s for s, at in zip(suspects, more[asked:])
                                                if adoptable(s, at, now)])
        out: builtins.list[Task | None] = []
        j = 0
        for tid, (spec_raw, cur_raw, prog_raw), hook_raw, has in zip(ids, heads, hooks, shape):
            if not has or spec_raw is None or cur_raw is None:
                out.append(None)
                continue
            lease_raw, *fins = more[j]
            j += 1
            task = _derive(spec_raw, cur_raw, prog_raw, lease_raw, fins, detail)
            if hook_raw:
                task = attrs.evolve(task, webhooks=tuple(
                    loads(line) for line in hook_raw.split(b"\n") if line))
            out.append(task)
        return out

    async def list(self, *, status: str | None = None, type: str | None = None, queue: str | None = None,
                   limit: int = 50, cursor: int | str | None = None, id_prefix: str | None = None,
                   text: str | None = None, created_after: float | None = None,
                   created_before: float | None = None) -> Page:
        """Tasks newest first, filtered (see :class:`~nexq.queue.search.TaskFilter`);
        ``next_cursor`` continues the walk, which covers at most
        :data:`~nexq.queue.search.SCAN_LIMIT` index entries per call.
        Raises ValueError for a cursor that is not one of this store's."""
        where = TaskFilter(status, type, queue, id_prefix, text, created_after, created_before)
        return await self.find(where, limit=limit, cursor=cursor)

    async def find(self, where: TaskFilter, *, limit: int = 50, cursor: int | str | None = None,
                   walk: int = SCAN_LIMIT) -> Page:
        """Up to ``limit`` tasks matching ``where``, newest first, walking at
        most about ``walk`` index entries; ``next_cursor`` (None at the end of
        the index) continues. Raises ValueError for a foreign cursor."""
        if isinstance(cursor, str):
            if not cursor.isdigit():
                raise ValueError(f"cursor {cursor!r} is not a cursor of this store: "
                                 "pass next_cursor from the previous page")
            cursor = int(cursor)
        top = cursor if cursor is not None else int(await self.store.get(self.keys.seq) or 0)
        found: builtins.list[Task] = []
        walked, n = 0, top
        while n > 0 and len(found) < limit and walked < walk:
            lo, chunk = await self.chunk(n)
            for t in chunk:
                if len(found) < limit and where.matches(t):
                    found.append(t)
            if len(found) >= limit:
                n = found[-1].spec.seq - 1
                break
            walked += n - lo
            n = 0 if where.past(chunk) else lo
        return Page(found, n if n > 0 else None)

    async def chunk(self, n: int, detail: bool = False) -> tuple[int, builtins.list[Task]]:
        """The tasks at index positions ``n`` down to (not including) the
        returned low position (:data:`~nexq.queue.search.SCAN_CHUNK` of
        them), newest first; ``detail``: every attempt, as :meth:`get`."""
        lo = max(0, n - SCAN_CHUNK)
        ids_raw = await self.store.mget([self.keys.index(i) for i in range(n, lo, -1)])
        ids = [r.decode() for r in ids_raw if r is not None]
        return lo, [t for t in await self._load(ids, detail) if t is not None]

    async def samples(self, since: float, limit: int) -> tuple[builtins.list[Sample], bool]:
        """Recent tasks reduced for per-type figures (see :mod:`nexq.queue.samples`)."""
        return await recent(self, since, limit)

    async def queues(self) -> builtins.list[str]:
        raw = await self.store.get(self.keys.queues) or b""
        return sorted({q for q in raw.decode().split(",") if q})

    async def queue_stats(self, names: Sequence[str] | None = None) -> builtins.list[dict[str, Any]]:
        """Per queue: ``paused``, ``pending`` (depth, and per priority), and
        counts that match the listing: ``scheduled`` (retries waiting for
        their time included) and ``succeeded`` / ``dead`` / ``cancelled``
        (ended so and not yet expired or deleted); ``totals``: lifetime counts
        of tasks that succeeded, died or were cancelled and of failed
        attempts (they never go down: Prometheus counters)."""
        names = list(names) if names is not None else await self.queues()
        k, now, counts = self.keys, self.node.clock(), self.node.outcomes.counts
        keys: builtins.list[str] = []
        for q in names:
            keys.append(k.paused(q))
            keys += [k.count(q, s) for s in LIFETIME]
            for s in TERMINAL:
                keys += counts.read_keys(q, s, now)
            for p in PRIORITIES:
                keys += depth_keys(k, q, p)
        vals = await self.store.mget(keys) if keys else []
        out, i = [], 0
        for q in names:
            paused = vals[i] is not None
            lifetime = dict(zip(LIFETIME, (int(v or 0) for v in vals[i + 1 : i + 1 + len(LIFETIME)])))
            scheduled, failed = lifetime.pop(State.SCHEDULED.value), lifetime.pop("failed")
            i += 1 + len(LIFETIME)
            ended = {}
            for s in TERMINAL:
                n = len(counts.read_keys(q, s, now))
                ended[s] = total(vals[i : i + n])
                i += n
            depth = {}
            for p in PRIORITIES:
                depth[p] = lane_depth(*vals[i : i + 4])
                i += 4
            out.append({
                "name": q, "paused": paused, "pending": sum(depth.values()),
                "depth_by_priority": depth, "scheduled": max(0, scheduled),
                **ended, "totals": {**lifetime, "failed_attempts": failed},
            })
        return out

    async def throughput(self, minutes: int = 60) -> builtins.list[dict[str, Any]]:
        """Processed / failed per minute, oldest first, for charts."""
        now_min = int(self.node.clock() // 60)
        mins = list(range(now_min - minutes + 1, now_min + 1))
        keys = [self.keys.minute(m, kind) for m in mins for kind in ("processed", "failed")]
        vals = await self.store.mget(keys)
        return [
            {"minute": m * 60, "processed": int(vals[2 * i] or 0), "failed": int(vals[2 * i + 1] or 0)}
            for i, m in enumerate(mins)
        ]

    async def pause(self, queue: str, register: bool = True) -> None:
        """Workers stop claiming from ``queue``. ``register``: list the queue
        here even before its first task, so a queue paused in advance shows."""
        await self.store.set(self.keys.paused(queue), b"1")
        if register:  # the producer's registry: the one place queues are listed from
            await self.node.producer.register_queues({queue})

    async def resume(self, queue: str) -> None:
        await self.store.delete(self.keys.paused(queue))

    async def requeue(self, task_id: str) -> bool:
        """Run an ended task (dead, cancelled, or succeeded: run it again)
        as a new attempt (pending) with a fresh retry budget. False if the
        task is unknown or has not ended."""
        k = self.keys
        spec_raw, cur_raw = await self.store.mget([k.spec(task_id), k.cur(task_id)])
        if spec_raw is None or cur_raw is None:
            return False
        a, state, at, _ = decode_cur(cur_raw)
        if state not in TERMINAL_STATES:
            return False
        # rq (requeue or delete of attempt a): only its winner moves the task
        # out of its terminal state, and out of its count.
        if not await self.store.set(k.requeued(task_id, a), b"1", nx=True, px=MARKER_MS):
            return False
        spec = decode_spec(spec_raw)
        now = self.node.clock()
        # A new attempt with a fresh retry budget; the task is live again, so
        # its keys lose their retention TTL.
        b = Batch().set(k.spec(task_id), encode_spec(spec)).set(k.index(spec.seq), task_id)
        b.set(k.cur(task_id), encode_cur(a + 1, State.PENDING, now, a))
        self.node.outcomes.counts.remove(b, spec.queue, state, at, now)
        await self.store.execute(b)
        await push(self.store, k, {(spec.queue, spec.priority): [Ref(task_id, a + 1)]})
        await self.node.ctx.hooks.after_push(self.node)
        return True

    async def delete(self, task_id: str) -> bool:
        """Cancel if live, then remove every key of the task (and take it out
        of its count). False if there is no such task."""
        k = self.keys
        a = 1
        for _ in range(5):
            spec_raw, cur_raw = await self.store.mget([k.spec(task_id), k.cur(task_id)])
            if spec_raw is None:
                return False
            spec = decode_spec(spec_raw)
            if cur_raw is None:
                break  # half-written: nothing counted it
            a, state, at, _ = decode_cur(cur_raw)
            if state not in TERMINAL_STATES:
                await self.node.cancel(task_id)  # it ends (cancelled), or ended meanwhile: look again
                continue
            # rq (requeue or delete of attempt a): only its winner counts it out.
            if await self.store.set(k.requeued(task_id, a), b"1", nx=True, px=MARKER_MS):
                b = Batch()
                self.node.outcomes.counts.remove(b, spec.queue, state, at, self.node.clock())
                await self.store.execute(b)
                break
            # requeued (or deleted) meanwhile: look again
        names = [k.spec(task_id), k.cur(task_id), k.progress(task_id), k.index(spec.seq)]
        names += [k.fin(task_id, n) for n in range(1, a + 1)]
        await self.store.delete(*names)
        return True

    async def purge_dead(self, queue: str | None = None) -> int:
        """Delete every dead task (of ``queue``); returns how many."""
        return await self._each_dead(queue, self.delete)

    async def count_dead(self, queue: str | None = None) -> int:
        """How many dead tasks (of ``queue``) :meth:`purge_dead` would delete now."""

        async def count(task_id: str) -> bool:
            return True

        return await self._each_dead(queue, count)

    async def requeue_dead(self, queue: str | None = None) -> int:
        """Run every dead task (of ``queue``) again; returns how many."""
        return await self._each_dead(queue, self.requeue)

    async def _each_dead(self, queue: str | None, action: Any) -> int:
        n, cursor = 0, None
        while True:
            page = await self.list(status="dead", queue=queue, limit=500, cursor=cursor)
            for t in page.tasks:
                n += await action(t.id)
            if page.next_cursor is None:
                return n
            cursor = page.next_cursor


_OUTCOME_STATUS = {
    Outcome.SUCCEEDED: Status.SUCCEEDED,
    Outcome.CANCELLED: Status.CANCELLED,
}


def _derive(
    spec_raw: bytes, cur_raw: bytes, prog_raw: bytes | None, lease_raw: bytes | None,
    fins: builtins.list[bytes | None], detail: bool,
) -> Task:
    spec = decode_spec(spec_raw)
    a, state, at, free = decode_cur(cur_raw)
    attempts: builtins.list[Attempt] = []
    result = None
    for raw in fins:
        if raw is not None:
            att, res = decode_attempt(raw)
            attempts.append(att)
            if att.outcome is Outcome.SUCCEEDED:
                result = res
    current = attempts[-1] if attempts and attempts[-1].number == a else None
    if state in TERMINAL_STATES:
        status = Status(state)
    elif current is not None and current.outcome is not None:
        status = _OUTCOME_STATUS.get(current.outcome, Status.RETRYING)
    elif lease_raw is not None:
        status = Status.RUNNING
        attempts.append(Attempt(a, None, *lease_holder(lease_raw)))
    else:
        status = Status(state)
    started = attempts[-1].started_at if attempts else None
    finished = at if status.terminal else None
    # Waiting: when it is due; otherwise when it was first due (history),
    # None for a task that was to run at once.
    scheduled = at if status in (Status.SCHEDULED, Status.RETRYING) else spec.run_at
    if not detail:
        attempts = attempts[-1:]
    return Task(
        spec=spec,
        status=status,
        # Shown: attempts counted against the retries (hand-backs and
        # deferrals are not), so never past max_retries + 1 while live or
        # dead; ``attempts`` keeps every record, numbered as stored.
        attempt=max(1, a - free),
        attempts=tuple(attempts),
        result=result,
        progress=loads(prog_raw) if prog_raw else None,
        scheduled_at=scheduled,
        started_at=started,
        finished_at=finished,
    )
