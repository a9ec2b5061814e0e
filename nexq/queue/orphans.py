"""Orphans: live tasks that nothing in the store points to any more.

A store restart can drop any subset of recent writes (docs/design.md,
"Failure model"). When a task's listing index entry *and* its lane slot are
among them while its ``spec`` and ``cur`` survive, the task is live but
unreachable: reconciliation walks the index, claimers walk the lanes, and
neither finds it. Only its id still leads to it, and whoever holds the id
asks for it sooner or later (``handle.result()``, ``GET /api/tasks/{id}``,
the dashboard). So every lookup by id checks that a live task's index entry
names it, and *adopts* an orphan: writes its entry back (a new position if
its old one is taken) and puts it on the recheck list, which the next
reconciliation round reads before anything else and repairs like any other
task (a lost lane slot: the attempt is decided ``lost`` and the next one
pushed; a lost ``cur``: rebuilt from the outcomes present).

Adoption waits until the task is :data:`ADOPT_AFTER` seconds old: a younger
task may still be in its producer's pipeline (spec written, index entry not
yet), and adopting it then would index it twice. Adopting twice, from two
readers at once, is harmless: ``SET NX`` keeps one entry, and a task on the
recheck list twice is checked once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ..codec import encode_spec
from ..keys import TERMINAL_STATES
from ..store import Batch
from ..task import TaskSpec

if TYPE_CHECKING:
    from .context import NodeContext

ADOPT_AFTER = 30.0  # seconds after creation before a task missing from the index is adopted
RECHECK_TTL_MS = 3_600_000  # an unread recheck list (no scheduler running) is dropped after this
STEP_LIMIT = 256  # largest jump past a range of taken index positions


def ended(cur_raw: bytes) -> bool:
    """Whether ``cur`` names a terminal state (a malformed one is not ended:
    it is looked at, and skipped with a log line)."""
    _, _, rest = cur_raw.partition(b"|")
    return rest.partition(b"|")[0].decode(errors="replace") in TERMINAL_STATES


def adoptable(spec: TaskSpec, indexed: bytes | None, now: float) -> bool:
    """Whether a live task whose index position holds ``indexed`` is an
    orphan old enough to adopt."""
    return indexed != spec.id.encode() and now - spec.created_at >= ADOPT_AFTER


async def adopt(ctx: NodeContext, specs: Sequence[TaskSpec]) -> None:
    """Index ``specs`` again and put them on the recheck list (see the module doc)."""
    if not specs:
        return
    k, store = ctx.keys, ctx.store
    numbered = [s for s in specs if s.seq > 0]
    b = Batch()
    for s in numbered:
        b.set(k.index(s.seq), s.id, nx=True)
    placed = await store.execute(b) if numbered else []
    for s, ok in zip(numbered, placed):
        if not ok and await store.get(k.index(s.seq)) != s.id.encode():
            await place_anew(ctx, s)
    for s in specs:
        if s.seq <= 0:  # never numbered (its producer died between the two round trips)
            await place_anew(ctx, s)
    b = Batch()
    for s in specs:
        b.append(k.reconcile_recheck, f"{s.id},")
    b.expire(k.reconcile_recheck, RECHECK_TTL_MS // 1000)
    await store.execute(b)


async def place_anew(ctx: NodeContext, spec: TaskSpec) -> TaskSpec:
    """Give ``spec`` a free index position past ``seq`` (jumping ahead,
    doubling, over any range another task holds) and rewrite its spec with
    it; returns the spec as stored."""
    k, store = ctx.keys, ctx.store
    step = 1
    while True:
        n = await store.incrby(k.seq, step)
        if await store.set(k.index(n), spec.id, nx=True):
            break
        step = min(step * 2, STEP_LIMIT)
    spec = attrs.evolve(spec, seq=n)
    await store.set(k.spec(spec.id), encode_spec(spec), keepttl=True)
    return spec


async def take_rechecks(ctx: NodeContext) -> list[str]:
    """The ids on the recheck list (each once, in order), emptying it."""
    raw = await ctx.store.set(ctx.keys.reconcile_recheck, b"", get=True, px=RECHECK_TTL_MS)
    seen: dict[str, None] = {}
    for tid in (raw or b"").decode(errors="replace").split(","):
        if tid:
            seen.setdefault(tid)
    return list(seen)


async def recheck_later(ctx: NodeContext, ids: Sequence[str]) -> None:
    """Put ``ids`` back on the recheck list (they were too young to repair)."""
    if ids:
        await ctx.store.append(ctx.keys.reconcile_recheck, "".join(f"{i}," for i in ids))
