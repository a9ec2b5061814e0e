"""``nexq cluster status`` and ``nexq cluster plan``: operating several store nodes.

``status`` shows, per node, what the ring places there and what is still
draining there; ``plan --add URL`` shows which queues a new node would take
(only those: consistent hashing) before anyone switches to the new list.
See docs/scaling.md for the procedure around them.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..config import Settings
from ..errors import StoreUnavailable
from ..queue.ring import Ring
from ..runtime.node_report import node_report
from ..runtime.runtime import open_runtime
from ..store.url import split_store_urls


def add_parser(sub: Any, common: Any) -> None:
    p = sub.add_parser("cluster", help="store nodes: where queues live, what a new node would take")
    common(p)
    p.add_argument("action", choices=["status", "plan"],
                   help="status: what each node holds; plan: what adding --add would move")
    p.add_argument("--add", help="plan: the node URL(s) to add, comma-separated")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


async def run_cluster(args: argparse.Namespace, settings: Settings) -> int:
    """Print the status or the plan; returns the exit code."""
    if args.action == "plan" and not args.add:
        raise ValueError("cluster plan needs --add URL (the node(s) to add)")
    async with open_runtime(settings) as rt:
        report = await node_report(rt)
    if args.action == "status":
        _print_status(report, args.json)
        return 0 if all(n["reachable"] for n in report) else 1
    down = [n["name"] for n in report if not n["reachable"]]
    if down:
        raise StoreUnavailable(f"store node {down[0]} does not answer: cannot read its queues to plan")
    current = [n.node_name for n in settings.store_nodes]
    added = [n.node_name for n in split_store_urls(args.add)]
    clash = sorted(set(current) & set(added))
    if clash:
        raise ValueError(f"--add: node {clash[0]} is already in --store")
    queues = sorted({q for n in report for q in n["live"]})
    moves = Ring(current).moves(Ring(current + added), queues)
    live = {(n["name"], q): v for n in report for q, v in n["live"].items()}
    rows = [{"queue": q, "from": a, "to": b, **live.get((a, q), {})} for q, (a, b) in sorted(moves.items())]
    if args.json:
        print(json.dumps({"moves": rows, "unchanged": len(queues) - len(rows)}, indent=2))
        return 0
    print(f"{len(rows)} of {len(queues)} queues move; every other queue stays where it is.")
    for r in rows:
        print(f"  {r['queue']:<24} {r['from']} -> {r['to']}   live on {r['from']}: "
              f"pending {r.get('pending', 0)}, scheduled {r.get('scheduled', 0)}, running {r.get('running', 0)}")
    print("New list: --store " + ",".join([str(n) for n in settings.store_nodes] + [args.add])
          + "   (keep the first node first: it holds the worker registry, cron and limits)")
    return 0


def _print_status(report: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for n in report:
        state = f"{n['latency_ms']} ms" if n["reachable"] else "UNREACHABLE"
        print(f"{n['name']}{' (home)' if n['home'] else ''}: {state}; "
              f"{len(n['queues'])} queues placed here")
        for q in n["queues"]:
            v = n["live"].get(q, {})
            print(f"  {q:<24} pending {v.get('pending', 0)}, scheduled {v.get('scheduled', 0)}, "
                  f"running {v.get('running', 0)}")
        for q in n["draining"]:
            v = n["live"][q]
            print(f"  {q:<24} DRAINING (placed elsewhere): pending {v['pending']}, "
                  f"scheduled {v['scheduled']}, running {v['running']}")
