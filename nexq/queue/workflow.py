"""Dependencies between tasks: a task waits until all its parents succeed.

Keys: ``deps:{child}`` counts the child's unresolved parents; ``kids:{p}``
is an append-list of the parent's children; ``edge:{child}:{p}`` (SET NX)
makes resolving one parent-child edge happen once, whoever gets there first:
the parent's terminal follow-up (which reads ``kids:{p}``) or the child's
enqueue (which appends itself, then reads the parent's state, so a parent
that ended before the append is still seen). The last edge to resolve
(``DECR`` reaching 0) releases the child; ``rel:{child}`` (SET NX) makes the
release happen once. A parent that ends dead or cancelled cancels the child
(policy ``cancel``, the default), which cascades to the child's own
children, or counts as resolved (policy ``run``). So no workflow gets stuck.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..codec import decode_cur, decode_spec, encode_cur
from ..keys import Keys
from ..store import Batch, Store
from ..task import TaskSpec
from .lanes import Ref, push
from .wheel import Entry

if TYPE_CHECKING:
    from .engine import Broker

TERMINAL = ("succeeded", "dead", "cancelled")
MARKER_MS = 7 * 86_400_000


def _k(br: Broker, part: str) -> str:
    return f"{br.keys.ns}:{part}"


async def check_parents(store: Store, keys: Keys, parents: Sequence[str]) -> None:
    """Raise ValueError naming a parent that does not exist."""
    found = await store.mget([keys.spec(p) for p in parents])
    for p, raw in zip(parents, found):
        if raw is None:
            raise ValueError(f"depends_on: no task {p!r}")


async def register(br: Broker, children: Sequence[TaskSpec]) -> None:
    """After the children's records are written: link them to their parents,
    then resolve the edges to parents that have already ended."""
    b = Batch()
    for c in children:
        b.set(_k(br, f"deps:{c.id}"), len(c.depends_on))
        for p in c.depends_on:
            b.append(_k(br, f"kids:{p}"), f"{c.id},")
            b.get(br.keys.cur(p))
    answers = await br.store.execute(b)
    pos = 0
    for c in children:
        pos += 1
        for p in c.depends_on:
            cur_raw = answers[pos + 1]
            pos += 2
            if cur_raw is not None:
                state = decode_cur(cur_raw)[1]
                if state in TERMINAL:
                    await resolve_edge(br, c.id, p, state)


def kids_key(br: Broker, parent: str) -> str:
    return _k(br, f"kids:{parent}")


async def parent_ended(br: Broker, parent: str, state: str, kids_raw: bytes) -> None:
    """A task reached a terminal state: resolve the edges to its children
    (``kids_raw``: its ``kids`` list, read right after its terminal write)."""
    for child in dict.fromkeys(c for c in kids_raw.decode().split(",") if c):
        await resolve_edge(br, child, parent, state)


async def resolve_edge(br: Broker, child: str, parent: str, state: str) -> None:
    if not await br.store.set(_k(br, f"edge:{child}:{parent}"), b"1", nx=True, px=MARKER_MS):
        return  # resolved already, by the other side
    spec_raw = await br.store.get(br.keys.spec(child))
    if spec_raw is None:
        return
    spec = decode_spec(spec_raw)
    if state != "succeeded" and spec.on_parent_failure == "cancel":
        await br.cancel(child, reason=f"parent task {parent} ended {state}")
        return
    left = await br.store.incrby(_k(br, f"deps:{child}"), -1)
    if left <= 0:
        await release(br, spec)


async def release(br: Broker, spec: TaskSpec) -> None:
    """Every parent resolved: the child becomes pending (or scheduled), once."""
    if not await br.store.set(_k(br, f"rel:{spec.id}"), b"1", nx=True, px=MARKER_MS):
        return
    if await br.store.exists(br.keys.fin(spec.id, 1)):
        return  # cancelled while it waited
    now = br.clock()
    if spec.run_at is not None and spec.run_at > now:
        b = Batch().set(br.keys.cur(spec.id), encode_cur(1, "scheduled", spec.run_at))
        b.incr(br.keys.count(spec.queue, "scheduled"))
        await br.store.execute(b)
        late = await br.wheel.add([Entry("P", spec.id, 1, spec.run_at)])
        if late:
            await br.promote(late)
        return
    await br.store.set(br.keys.cur(spec.id), encode_cur(1, "pending", now))
    await push(br.store, br.keys, {(spec.queue, spec.priority): [Ref(spec.id, 1)]})
    await br.announce()


async def children(br: Broker, parent: str) -> list[str]:
    raw = await br.store.get(_k(br, f"kids:{parent}"))
    return list(dict.fromkeys(c for c in (raw or b"").decode().split(",") if c))
