"""arq: asyncio client; 2 `arq` worker processes, max_jobs 100, poll_delay
0.05 s (default 0.5 s: arq polls its queue)."""

from __future__ import annotations

import asyncio
import os
import sys
from importlib.metadata import version

from arq.connections import RedisSettings

from .base import ENV_REDIS, record_done, record_start

URL = os.environ.get(ENV_REDIS, "redis://127.0.0.1:6379")
WORKERS, MAX_JOBS, POLL_DELAY = 2, 100, 0.05


async def noop(ctx, i):
    record_done()


async def mark(ctx, t):
    record_start(t)


class WorkerSettings:
    functions = [noop, mark]
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = MAX_JOBS
    poll_delay = POLL_DELAY
    keep_result = 600


class Peer:
    name = "arq"
    kind = "async"

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool = None
        self.settings = {
            "version": f"arq {version('arq')}, redis-py {version('redis')}",
            "workers": f"{WORKERS} × `arq WorkerSettings` (max_jobs {MAX_JOBS}, poll_delay {POLL_DELAY} s)",
            "enqueue": "ArqRedis.enqueue_job",
            "bulk": "no bulk API: asyncio.gather of enqueue_job per batch",
        }

    async def open(self) -> None:
        from arq import create_pool

        self.pool = await create_pool(RedisSettings.from_dsn(self.url))

    async def reset(self) -> None:
        await self.pool.flushall()

    async def enqueue(self, i: int) -> None:
        await self.pool.enqueue_job("noop", i)

    async def enqueue_batch(self, items) -> None:
        await asyncio.gather(*(self.pool.enqueue_job("noop", i) for i in items))

    async def mark(self, t: float) -> None:
        await self.pool.enqueue_job("mark", t)

    def start_workers(self, w) -> None:
        exe = os.path.join(os.path.dirname(sys.executable), "arq")
        for _ in range(WORKERS):
            w.start([exe, "benchmarks.peerbench.arq_peer.WorkerSettings"], "arq")

    async def close(self) -> None:
        await self.pool.aclose()
