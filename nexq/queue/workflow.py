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
from ..hooks import Middleware, Terminal
from ..keys import EDGE_MARKER_MS, TERMINAL_STATES, Keys, State
from ..store import Batch, Store
from ..task import TaskSpec
from .lanes import Ref, push
from .wheel import Entry

if TYPE_CHECKING:
    from .node import NodeBroker


async def check_parents(store: Store, keys: Keys, parents: Sequence[str]) -> None:
    """Raise ValueError naming a parent that does not exist."""
    found = await store.mget([keys.spec(p) for p in parents])
    for p, raw in zip(parents, found):
        if raw is None:
            raise ValueError(f"depends_on: no task {p!r}")


async def register(node: NodeBroker, children: Sequence[TaskSpec]) -> None:
    """After the children's records are written: link them to their parents,
    then resolve the edges to parents that have already ended."""
    k = node.ctx.keys
    b = Batch()
    for c in children:
        b.set(k.deps(c.id), len(c.depends_on))
        for p in c.depends_on:
            b.append(k.kids(p), f"{c.id},")
            b.get(k.cur(p))
    answers = await node.ctx.store.execute(b)
    pos = 0
    for c in children:
        pos += 1
        for p in c.depends_on:
            cur_raw = answers[pos + 1]
            pos += 2
            if cur_raw is not None:
                state = decode_cur(cur_raw)[1]
                if state in TERMINAL_STATES:
                    await resolve_edge(node, c.id, p, state)


class Workflows(Middleware):
    """Resolves a parent's edges to its children when it ends: the queue's
    own subscriber to ``after_terminal`` (every node broker has it)."""

    async def after_terminal(self, node: NodeBroker, event: Terminal) -> None:
        for child in event.children:
            await resolve_edge(node, child, event.spec.id, event.state)


async def resolve_edge(node: NodeBroker, child: str, parent: str, state: str) -> None:
    store, k = node.ctx.store, node.ctx.keys
    if not await store.set(k.edge(child, parent), b"1", nx=True, px=EDGE_MARKER_MS):
        return  # resolved already, by the other side
    spec_raw = await store.get(k.spec(child))
    if spec_raw is None:
        return
    spec = decode_spec(spec_raw)
    if state != State.SUCCEEDED and spec.on_parent_failure == "cancel":
        await node.cancel(child, reason=f"parent task {parent} ended {state}")
        return
    left = await store.incrby(k.deps(child), -1)
    if left <= 0:
        await release(node, spec)


async def release(node: NodeBroker, spec: TaskSpec, force: bool = False) -> None:
    """Every parent resolved: the child becomes pending (or scheduled), once
    (``force``: again, for reconciliation after the store lost the first time's writes)."""
    ctx = node.ctx
    store, k = ctx.store, ctx.keys
    if not await store.set(k.released(spec.id), b"1", nx=True, px=EDGE_MARKER_MS) and not force:
        return
    if await store.exists(k.fin(spec.id, 1)):
        return  # cancelled while it waited
    now = ctx.clock()
    if spec.run_at is not None and spec.run_at > now:
        b = Batch().set(k.cur(spec.id), encode_cur(1, State.SCHEDULED, spec.run_at))
        b.incr(k.count(spec.queue, State.SCHEDULED))
        await store.execute(b)
        late = await ctx.wheel.add([Entry("P", spec.id, 1, spec.run_at)])
        if late:
            await node.promote(late)
        return
    await store.set(k.cur(spec.id), encode_cur(1, State.PENDING, now))
    await push(store, k, {(spec.queue, spec.priority): [Ref(spec.id, 1)]})
    await ctx.hooks.after_push(node)


async def children(store: Store, keys: Keys, parent: str) -> list[str]:
    """The ids of the tasks that depend on ``parent``, in the order they were added."""
    raw = await store.get(keys.kids(parent))
    return list(dict.fromkeys(c for c in (raw or b"").decode().split(",") if c))
