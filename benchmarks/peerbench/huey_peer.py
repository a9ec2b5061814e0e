"""Huey: RedisHuey with its defaults (blocking BRPOP dequeue; results
stored, None results not); one `huey_consumer` with 2 worker processes."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version

from huey import RedisHuey

from .base import ENV_REDIS, record_done, record_start

URL = os.environ.get(ENV_REDIS, "redis://127.0.0.1:6379")
WORKERS, KIND = 2, "process"

huey = RedisHuey("peerbench", url=URL)


@huey.task()
def noop(i):
    record_done()


@huey.task()
def mark(t):
    record_start(t)


class Peer:
    name = "huey"
    kind = "sync"

    def __init__(self, url: str) -> None:
        self.url = url
        self.settings = {
            "version": f"huey {version('huey')}, redis-py {version('redis')}",
            "workers": f"1 × `huey_consumer -w {WORKERS} -k {KIND}` (blocking dequeue, BRPOP)",
            "enqueue": "task(...) call",
            "bulk": "no bulk API: one task call per message",
        }

    def reset(self) -> None:
        huey.storage.conn.flushall()

    def enqueue(self, i: int) -> None:
        noop(i)

    def enqueue_batch(self, items) -> None:
        for i in items:
            noop(i)

    def mark(self, t: float) -> None:
        mark(t)

    def start_workers(self, w) -> None:
        exe = os.path.join(os.path.dirname(sys.executable), "huey_consumer")
        w.start([exe, "benchmarks.peerbench.huey_peer.huey", "-w", str(WORKERS), "-k", KIND, "-n", "-q"], "huey")

    def close(self) -> None:
        pass
