"""SAQ: asyncio client; `saq settings --workers 2`, concurrency 100 per
process (dequeue by BLMOVE: no polling)."""

from __future__ import annotations

import asyncio
import os
import sys
from importlib.metadata import version

from saq import Queue

from .base import ENV_REDIS, record_done, record_start

URL = os.environ.get(ENV_REDIS, "redis://127.0.0.1:6379")
WORKERS, CONCURRENCY = 2, 100


async def noop(ctx, *, i):
    record_done()


async def mark(ctx, *, t):
    record_start(t)


settings = {
    "queue": Queue.from_url(URL, name="peerbench"),
    "functions": [noop, mark],
    "concurrency": CONCURRENCY,
}


class Peer:
    name = "saq"
    kind = "async"

    def __init__(self, url: str) -> None:
        self.url = url
        self.q = None
        self.settings = {
            "version": f"saq {version('saq')}, redis-py {version('redis')}",
            "workers": f"`saq settings --workers {WORKERS}` (concurrency {CONCURRENCY} per process)",
            "enqueue": "Queue.enqueue",
            "bulk": "no enqueue_many: asyncio.gather of Queue.enqueue per batch",
        }

    async def open(self) -> None:
        self.q = Queue.from_url(self.url, name="peerbench")
        await self.q.connect()

    async def reset(self) -> None:
        await self.q.redis.flushall()

    async def enqueue(self, i: int) -> None:
        await self.q.enqueue("noop", i=i)

    async def enqueue_batch(self, items) -> None:
        await asyncio.gather(*(self.q.enqueue("noop", i=i) for i in items))

    async def mark(self, t: float) -> None:
        await self.q.enqueue("mark", t=t)

    def start_workers(self, w) -> None:
        exe = os.path.join(os.path.dirname(sys.executable), "saq")
        w.start([exe, "benchmarks.peerbench.saq_peer.settings", "--workers", str(WORKERS), "--quiet"], "saq")

    async def close(self) -> None:
        await self.q.disconnect()
