"""Round trips of a lone enqueue after a pause, and what keeping warm costs.

    python benchmarks/lone_enqueue.py [--url URL] [--pauses 0.5,4,35] [--idle 20]

For ``nexq.Client``, ``nexq.AsyncClient`` and the runtime's enqueue (the core
of ``POST /api/tasks``), kept warm (the default) and not (``keep_warm=False``;
the runtime: its keeper stopped): after a first enqueue, one enqueue after
each pause, counting the round trips the caller made (the keeper's own, in
the background, are not the caller's). Then the store commands per second
an idle, kept-warm ``Client`` costs (``INFO commandstats`` over ``--idle``
seconds; only with the default local redis-server, where nothing else
runs). The real clocks: blocks expire after 3 s, the registry snapshot
after 30 s. Without ``--url``, a throw-away local redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Any

import redis
import trio
from common import machine_line, store_url

from nexq import AsyncClient, Client
from nexq.api.routes_tasks import enqueue_one
from nexq.config import Settings
from nexq.runtime.runtime import open_runtime
from nexq.store.aio import AioPool
from nexq.store.blocking import BlockingConnection
from nexq.store.resp import RespStore

counts = {"n": 0}


def count_callers(thread: int, trio_tasks: list[Any]) -> None:
    """Count the round trips of the caller's thread, its asyncio tasks but
    the keeper, and the trio tasks listed: wraps the three drivers' calls."""
    call, aio_call, execute = BlockingConnection.call, AioPool._call, RespStore.execute

    def blocking(self: BlockingConnection, commands: Any) -> Any:
        if threading.get_ident() == thread:
            counts["n"] += 1
        return call(self, commands)

    async def aio(self: AioPool, commands: Any) -> Any:
        task = asyncio.current_task()
        if task is None or task.get_name() != "nexq-client-warm":
            counts["n"] += 1
        return await aio_call(self, commands)

    async def resp(self: RespStore, batch: Any) -> Any:
        if trio.lowlevel.current_task() in trio_tasks:
            counts["n"] += 1
        return await execute(self, batch)

    BlockingConnection.call = blocking  # type: ignore[method-assign]
    AioPool._call = aio  # type: ignore[method-assign]
    RespStore.execute = resp  # type: ignore[method-assign]


def sync_client(url: str, pauses: list[float], warm: bool) -> list[int]:
    out = []
    with Client(url, namespace=f"lone-sync-{warm}", keep_warm=warm) as client:
        client.enqueue("noop", 0)
        for p in pauses:
            time.sleep(p)
            before = counts["n"]
            client.enqueue("noop", p)
            out.append(counts["n"] - before)
    return out


def async_client(url: str, pauses: list[float], warm: bool) -> list[int]:
    async def main() -> list[int]:
        out = []
        async with AsyncClient(url, namespace=f"lone-aio-{warm}", keep_warm=warm) as client:
            await client.enqueue("noop", 0)
            for p in pauses:
                await asyncio.sleep(p)
                before = counts["n"]
                await client.enqueue("noop", p)
                out.append(counts["n"] - before)
        return out

    return asyncio.run(main())


def runtime(url: str, pauses: list[float], warm: bool, trio_tasks: list[Any]) -> list[int]:
    async def main() -> list[int]:
        trio_tasks.append(trio.lowlevel.current_task())
        out = []
        async with open_runtime(Settings.load({"store": url, "namespace": f"lone-rt-{warm}"})) as rt:
            if not warm and rt.warm is not None:
                rt.warm.producers = []  # the keeper looks at nothing
            await enqueue_one(rt, {"type": "noop", "payload": 0})
            for p in pauses:
                await trio.sleep(p)
                before = counts["n"]
                await enqueue_one(rt, {"type": "noop", "payload": p})
                out.append(counts["n"] - before)
        return out

    return trio.run(main)


def idle_cost(url: str, seconds: float) -> tuple[float, dict[str, float]]:
    """Commands/s the server ran while one kept-warm Client idled."""
    r = redis.Redis.from_url(url, protocol=2)

    def stats() -> dict[str, int]:
        return {k: int(v["calls"]) for k, v in r.info("commandstats").items()}  # type: ignore[union-attr]

    with Client(url, namespace="lone-idle") as client:
        client.enqueue("noop", 0)
        time.sleep(1)
        a = stats()
        time.sleep(seconds)
        b = stats()
    per = {k.removeprefix("cmdstat_"): (b[k] - a.get(k, 0)) / seconds for k in b if b[k] != a.get(k, 0)}
    per.pop("info", None)
    return sum(per.values()), per


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="redis://, pogocache:// (default: a local redis-server)")
    ap.add_argument("--pauses", default="0.5,4,35", help="seconds before each lone enqueue")
    ap.add_argument("--idle", type=float, default=20.0, help="seconds of idle load counted")
    args = ap.parse_args()
    pauses = [float(p) for p in args.pauses.split(",")]
    trio_tasks: list[Any] = []
    count_callers(threading.get_ident(), trio_tasks)
    print(machine_line())
    print(f"pauses (s): {pauses}; round trips of the lone enqueue after each\n")
    print("| producer | kept warm | round trips |")
    print("|---|---|---|")
    with store_url(args.url) as url:
        for warm in (True, False):
            print(f"| nexq.Client | {warm} | {sync_client(url, pauses, warm)} |", flush=True)
            print(f"| nexq.AsyncClient | {warm} | {async_client(url, pauses, warm)} |", flush=True)
            print(f"| runtime (`POST /api/tasks`) | {warm} | {runtime(url, pauses, warm, trio_tasks)} |",
                  flush=True)
        if not args.url:
            total, per = idle_cost(url, args.idle)
            detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items()))
            print(f"\nan idle kept-warm Client: {total:.2f} store commands/s ({detail})")


if __name__ == "__main__":
    main()
