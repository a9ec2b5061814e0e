"""Producing without trio: nexq.Client from a plain loop, nexq.AsyncClient
with 100 enqueues in flight, against the trio app's own enqueue.

    python benchmarks/clients.py [--url URL] [--tasks N]

With no --url it starts a redis-server on a free port. Each row: tasks/s,
microseconds per enqueue, and store round trips per enqueue (counted as the
Batches the planned store yields, not a coalesced member's wait; the trio
row counts its store's batches) and the producer process's CPU (user +
system) per enqueue, which a loaded machine disturbs less than the rate.
``PING`` is one bare round trip on a blocking socket: the floor a round
trip costs this machine. To compare with an older checkout, copy this
script into that checkout's ``benchmarks/`` and run it there (it uses
public APIs only; ``common`` puts its own checkout first on the path).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import trio
from common import Counting, machine_line, store_url

from nexq import AsyncClient, Client
from nexq.queue import NodeBroker
from nexq.store import Batch, open_store
from nexq.store.blocking import BlockingConnection
from nexq.store.url import parse_store_url

Row = tuple[str, float, float, float]  # (what, tasks/s, round trips per task, producer CPU µs per task)


class Counted:
    """A coroutine whose yielded requests (store round trips) are counted."""

    requests = 0

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro

    def send(self, value: Any) -> Any:
        return self._count(self.coro.send(value))

    def throw(self, exc: BaseException) -> Any:
        return self._count(self.coro.throw(exc))

    @staticmethod
    def _count(request: Any) -> Any:
        # Round trips only: not a coalesced member's wait for its group, nor a scheduler pass.
        if type(request) is Batch:
            Counted.requests += 1
        return request

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        return self.coro.__await__()


def counted(fn: Callable[[NodeBroker], Coroutine[Any, Any, Any]]) -> Callable[[NodeBroker], Any]:
    return lambda node: Counted(fn(node))


def ping_us(url: str, n: int) -> float:
    conn = BlockingConnection(parse_store_url(url), 5.0)
    t0 = time.perf_counter()
    for _ in range(n):
        conn.call([("PING",)])
    conn.close()
    return (time.perf_counter() - t0) / n * 1e6


def blocking(url: str, n: int) -> Row:
    with Client(url, namespace="bench" + uuid.uuid4().hex[:6]) as client:
        client.enqueue("warm-up")
        Counted.requests = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            # client.enqueue("noop", i), with its round trips counted
            client.run(counted(lambda node, i=i: client._producing.enqueue(node, [("noop", i, {})])))
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return "Client, sequential (plain loop)", n / dt, Counted.requests / n, cpu / n * 1e6


async def aio(url: str, n: int, in_flight: int) -> Row:
    async with AsyncClient(url, namespace="bench" + uuid.uuid4().hex[:6]) as client:
        await client.enqueue("warm-up")
        Counted.requests = 0

        async def producer(k: int) -> None:
            for i in range(n // in_flight):
                await client.run(counted(lambda node, i=i: client._producing.enqueue(node, [("noop", i, {})])))

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*[producer(k) for k in range(in_flight)])
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    done = (n // in_flight) * in_flight
    label = "AsyncClient, sequential" if in_flight == 1 else f"AsyncClient, {in_flight} in flight"
    return label, done / dt, Counted.requests / done, cpu / done * 1e6


async def trio_app(url: str, n: int) -> Row:
    async with open_store(url) as raw:
        store = Counting(raw)
        broker = NodeBroker(store, namespace="bench" + uuid.uuid4().hex[:6])
        await broker.enqueue("warm-up")
        store.round_trips = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(n):
            await broker.enqueue("noop", i)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return "trio NodeBroker (reference), sequential", n / dt, store.round_trips / n, cpu / n * 1e6


def measure(url: str, n: int) -> tuple[float, list[Row]]:
    floor = ping_us(url, n)
    rows = [
        blocking(url, n),
        asyncio.run(aio(url, n, 1)),
        asyncio.run(aio(url, n, 100)),
        trio.run(trio_app, url, n),
    ]
    return floor, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="store URL (default: a redis-server started here)")
    ap.add_argument("--tasks", type=int, default=20_000)
    args = ap.parse_args()
    print(f"Machine: {machine_line()}\n")

    def show(url: str) -> None:
        floor, rows = measure(url, args.tasks)
        print(f"Store: {url.split('://')[0]}; one bare round trip (PING, blocking socket): {floor:.1f} µs\n")
        print("| producer | tasks/s | µs/enqueue | producer CPU µs/enqueue | round trips/enqueue |")
        print("|---|---:|---:|---:|---:|")
        for label, rate, rts, cpu in rows:
            print(f"| {label} | {rate:,.0f} | {1e6 / rate:.1f} | {cpu:.1f} | {rts:.2f} |")

    with store_url(args.url) as url:
        show(url)


if __name__ == "__main__":
    main()
