"""Where the work is: a report per store node, for the API, CLI and operators.

For each node: whether it answers, its round trip, the queues the ring
places on it, and per queue it holds the tasks still live there (pending,
scheduled, running). A queue held by a node it is no longer placed on, with
live tasks left, is *draining* there: workers still claim it on that node
until it is empty (see docs/scaling.md).
"""

from __future__ import annotations

from typing import Any

import trio

from ..errors import StoreUnavailable
from ..queue import Inspector
from ..queue.gather import gather
from .runtime import Runtime

PING_TIMEOUT = 5.0


async def nodes_down(rt: Runtime) -> list[str]:
    """Names of the store nodes other than home that do not answer a ping."""
    nodes = rt.broker.nodes

    async def dead(i: int) -> bool:
        with trio.move_on_after(PING_TIMEOUT):
            try:
                await nodes[i].store.ping()
                return False
            except StoreUnavailable:
                return True
        return True

    others = range(1, len(nodes))
    flags = await gather(dead, others)
    return [rt.node_names[i] for i, d in zip(others, flags) if d]


async def node_report(rt: Runtime) -> list[dict[str, Any]]:
    """One entry per node; see the module docstring. Never raises for a
    node that is down: it is reported with ``reachable: false``."""
    backend = rt.broker
    nodes, names = backend.nodes, rt.node_names
    several = len(nodes) > 1
    running: dict[tuple[str, str], int] = {}
    try:
        listed = await rt.registry.list()
    except StoreUnavailable:  # the home node is down: running counts unknown (0)
        listed = []
    for w in listed:
        for r in w.get("running", []):
            key = (r.get("node") or names[0], r.get("queue", ""))
            running[key] = running.get(key, 0) + 1

    async def one(i: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": names[i], "home": i == 0, "reachable": False,
                                 "latency_ms": None, "queues": [], "draining": [], "live": {}}
        ins = Inspector(nodes[i])
        try:
            with trio.fail_after(max(1.0, rt.settings.store_timeout)):
                entry["latency_ms"] = round(await nodes[i].store.ping() * 1000, 3)
                held = await ins.queues()
                stats = await ins.queue_stats(held)
        except (StoreUnavailable, trio.TooSlowError):
            return entry
        entry["reachable"] = True
        for s in stats:
            q = s["name"]
            live = {"pending": s["pending"], "scheduled": s["scheduled"],
                    "running": running.get((names[i], q), 0)}
            entry["live"][q] = live
            if not several:
                entry["queues"].append(q)
            elif backend.node_of(q) != i and any(live.values()):
                entry["draining"].append(q)
                entry.setdefault("placed_on", {})[q] = names[backend.node_of(q)]
        return entry

    entries = await gather(one, range(len(nodes)))
    if several:
        # Placed queues come from every node's holdings, so a node lists a
        # queue the ring gives it before its first task lands there, and an
        # unreachable node still shows what is placed on it.
        every = set().union(*await backend.held(fresh=True))
        for i, e in enumerate(entries):
            e["queues"] = sorted(q for q in every if backend.node_of(q) == i)
    return entries
