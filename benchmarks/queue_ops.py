"""Queue engine throughput: enqueue (single, bulk) and claim+ack, with store
round trips and commands per task.

    python benchmarks/queue_ops.py [--url URL] [--tasks N]

With no --url it runs against the embedded store and a redis-server it
starts on a free port; pass a Pogocache URL to measure that.
"""

from __future__ import annotations

import argparse
import time
import uuid

import trio
from common import Counting, local_redis, machine_line

from nexq.queue import NodeBroker, EnqueueRequest, LaneReader
from nexq.store import open_store


async def measure(url: str, n: int) -> list[tuple[str, float, float, float]]:
    rows = []
    async with open_store(url) as raw:
        store = Counting(raw)
        ns = "bench" + uuid.uuid4().hex[:6]
        br = NodeBroker(store, namespace=ns)

        async def phase(name: str, count: int, fn) -> None:  # type: ignore[no-untyped-def]
            store.round_trips = store.commands = 0
            t0 = time.perf_counter()
            await fn()
            dt = time.perf_counter() - t0
            rows.append((name, count / dt, store.round_trips / count, store.commands / count))

        async def single() -> None:
            for i in range(n // 10):
                await br.enqueue("noop", i)

        async def concurrent() -> None:
            async def producer(k: int) -> None:
                for i in range(n // 100):
                    await br.enqueue("noop", i)

            async with trio.open_nursery() as nursery:
                for k in range(100):
                    nursery.start_soon(producer, k)

        async def bulk() -> None:
            for i in range(0, n, 1000):
                await br.enqueue_many([EnqueueRequest("noop", j) for j in range(i, i + 1000)])

        await phase("enqueue, sequential", n // 10, single)
        await phase("enqueue, 100 in flight", (n // 100) * 100, concurrent)
        await phase("enqueue_many, batches of 1000", n, bulk)
        total = n // 10 + (n // 100) * 100 + n

        async def claim_ack() -> None:
            reader = LaneReader(store, br.keys)
            done = 0
            while done < total:
                got = await br.claim(["default"], 100, "bench", reader)
                async with trio.open_nursery() as nursery:
                    for c in got:
                        nursery.start_soon(br.ack, c)
                done += len(got)

        await phase("claim (batches of 100) + ack", total, claim_ack)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", action="append", help="store URL (repeatable)")
    ap.add_argument("--tasks", type=int, default=20_000)
    args = ap.parse_args()
    print(f"Machine: {machine_line()}\n")
    print("| store | operation | tasks/s | round trips/task | commands/task |")
    print("|---|---|---:|---:|---:|")

    def show(label: str, rows: list[tuple[str, float, float, float]]) -> None:
        for name, rate, rts, cmds in rows:
            print(f"| {label} | {name} | {rate:,.0f} | {rts:.3f} | {cmds:.2f} |")

    if args.url:
        for url in args.url:
            show(url.split("://")[0], trio.run(measure, url, args.tasks))
        return
    show("embedded", trio.run(measure, "memory://", args.tasks))
    with local_redis() as url:
        show("redis-server", trio.run(measure, url, args.tasks))


if __name__ == "__main__":
    main()
