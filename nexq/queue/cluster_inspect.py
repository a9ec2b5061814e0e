"""The read and admin model across store nodes: one Inspector per node, merged.

Per-task calls go to the node holding the task; per-queue figures are summed
over every node that holds the queue (its ring node and, after a node was
added, the node it is draining from); listings merge the nodes' newest-first
pages. A listing cursor is one position per node: ``"c0.c1.…"`` where an
empty part means "from the newest" and ``0`` means "no more on that node".
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..task import Task
from .gather import gather
from .inspect import Inspector, Page
from .samples import Sample
from .search import SCAN_LIMIT, TaskFilter

if TYPE_CHECKING:
    from .cluster import ClusterBroker


class ClusterInspector:
    """Queries and admin actions over every node of a ClusterBroker (the
    same methods as :class:`~nexq.queue.inspect.Inspector`)."""

    def __init__(self, broker: ClusterBroker) -> None:
        self.cluster = broker
        self.parts = [Inspector(n) for n in broker.nodes]

    async def get(self, task_id: str) -> Task | None:
        i = await self.cluster.locate(task_id)
        return None if i is None else await self.parts[i].get(task_id)

    async def get_many(self, task_ids: Sequence[str]) -> builtins.list[Task | None]:
        where = await self.cluster.locate_many(task_ids)
        out: builtins.list[Task | None] = [None] * len(task_ids)
        by_node: dict[int, builtins.list[int]] = {}
        for j, i in enumerate(where):
            if i is not None:
                by_node.setdefault(i, []).append(j)

        async def one(i: int, idx: builtins.list[int]) -> None:
            for j, t in zip(idx, await self.parts[i].get_many([task_ids[j] for j in idx])):
                out[j] = t

        await gather(lambda g: one(*g), by_node.items())
        return out

    async def list(self, *, status: str | None = None, type: str | None = None, queue: str | None = None,
                   limit: int = 50, cursor: int | str | None = None, id_prefix: str | None = None,
                   text: str | None = None, created_after: float | None = None,
                   created_before: float | None = None) -> Page:
        """Newest first across nodes (by creation time); see the module
        docstring for the cursor. Raises ValueError for a malformed cursor."""
        where = TaskFilter(status, type, queue, id_prefix, text, created_after, created_before)
        return await self.find(where, limit=limit, cursor=cursor)

    async def find(self, where: TaskFilter, *, limit: int = 50, cursor: int | str | None = None,
                   walk: int = SCAN_LIMIT) -> Page:
        """:meth:`Inspector.find` on every node, merged (``walk`` per node)."""
        n = len(self.parts)
        starts = _parse_cursor(cursor, n)
        live = [i for i in range(n) if starts[i] != 0]

        async def page(i: int) -> Page:
            return await self.parts[i].find(where, limit=limit, cursor=starts[i], walk=walk)

        pages = dict(zip(live, await gather(page, live)))
        # A k-way merge of the nodes' pages, newest head first: what it takes
        # from each node is a prefix of that node's page, so one position
        # per node is a correct cursor.
        heads = {i: 0 for i in pages}
        merged: builtins.list[tuple[Task, int]] = []
        while len(merged) < limit:
            ready = [i for i in heads if heads[i] < len(pages[i].tasks)]
            if not ready:
                break
            i = max(ready, key=lambda j: (pages[j].tasks[heads[j]].spec.created_at, -j))
            merged.append((pages[i].tasks[heads[i]], i))
            heads[i] += 1
        nxt: builtins.list[int | None] = list(starts)
        for i, p in pages.items():
            taken = p.tasks[:heads[i]]
            if len(taken) == len(p.tasks):
                nxt[i] = int(p.next_cursor) if p.next_cursor is not None else 0
            elif taken:
                nxt[i] = taken[-1].spec.seq - 1 or 0
        more = any(c != 0 for c in nxt)
        return Page([t for t, _ in merged], ".".join("" if c is None else str(c) for c in nxt) if more else None)

    async def samples(self, since: float, limit: int) -> tuple[builtins.list[Sample], bool]:
        """The newest ``limit`` of every node's samples; complete if each node's were."""
        per_node = await gather(lambda p: p.samples(since, limit), self.parts)
        merged = sorted((s for part, _ in per_node for s in part), key=lambda s: -s.created_at)
        return merged[:limit], all(done for _, done in per_node) and len(merged) <= limit

    async def queues(self) -> builtins.list[str]:
        return sorted(set().union(*await self.cluster.held(fresh=True)))

    async def queue_stats(self, names: Sequence[str] | None = None) -> builtins.list[dict[str, Any]]:
        """Each queue's figures summed over the nodes holding it; ``paused``
        as its ring node says; ``nodes`` names where its tasks are."""
        names = list(names) if names is not None else await self.queues()
        held = await self.cluster.held()
        per_node = await gather(lambda p: p.queue_stats(names), self.parts)
        out = []
        for k, q in enumerate(names):
            home = self.cluster.node_of(q)
            total = dict(per_node[home][k])
            total["depth_by_priority"] = dict(total["depth_by_priority"])
            total["totals"] = dict(total["totals"])
            where = [self.cluster.names[home]]
            for i, stats in enumerate(per_node):
                if i == home:
                    continue
                s = stats[k]
                if q in held[i]:
                    where.append(self.cluster.names[i])
                for f in ("pending", "scheduled", "succeeded", "dead", "cancelled"):
                    total[f] += s[f]
                for p, d in s["depth_by_priority"].items():
                    total["depth_by_priority"][p] += d
                for f, n in s["totals"].items():
                    total["totals"][f] = total["totals"].get(f, 0) + n
            total["nodes"] = where
            out.append(total)
        return out

    async def throughput(self, minutes: int = 60) -> builtins.list[dict[str, Any]]:
        series = await gather(lambda p: p.throughput(minutes), self.parts)
        out = [dict(row) for row in series[0]]
        for other in series[1:]:
            for row, more in zip(out, other):
                row["processed"] += more["processed"]
                row["failed"] += more["failed"]
        return out

    async def pause(self, queue: str) -> None:
        """Paused on every node, so tasks still draining from an old node pause
        too; listed on its ring node (a queue paused before its first task shows)."""
        home = self.cluster.node_of(queue)
        await gather(lambda i: self.parts[i].pause(queue, register=i == home), range(len(self.parts)))

    async def resume(self, queue: str) -> None:
        await gather(lambda p: p.resume(queue), self.parts)

    async def requeue(self, task_id: str) -> bool:
        i = await self.cluster.locate(task_id)
        return False if i is None else await self.parts[i].requeue(task_id)

    async def delete(self, task_id: str) -> bool:
        i = await self.cluster.locate(task_id)
        return False if i is None else await self.parts[i].delete(task_id)

    async def purge_dead(self, queue: str | None = None) -> int:
        return sum(await gather(lambda p: p.purge_dead(queue), self.parts))

    async def count_dead(self, queue: str | None = None) -> int:
        return sum(await gather(lambda p: p.count_dead(queue), self.parts))

    async def requeue_dead(self, queue: str | None = None) -> int:
        return sum(await gather(lambda p: p.requeue_dead(queue), self.parts))


def _parse_cursor(cursor: int | str | None, n: int) -> builtins.list[int | None]:
    if cursor is None or cursor == "":
        return [None] * n
    parts = str(cursor).split(".")
    if len(parts) != n or not all(p == "" or p.isdigit() for p in parts):
        raise ValueError(f"cursor {cursor!r} is not a cursor of this {n}-node store: "
                         "pass next_cursor from the previous page")
    return [int(p) if p else None for p in parts]
