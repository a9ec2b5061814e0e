"""RQ: sync client; `rq worker` processes (SimpleWorker: no fork per job)."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version

from .base import record_done, record_start

QUEUE = "peerbench"
WORKERS = 2
WORKER_CLASS = "rq.worker.SimpleWorker"


def noop(i):  # the task; runs in the worker
    record_done()


def mark(t):
    record_start(t)


class Peer:
    name = "rq"
    kind = "sync"

    def __init__(self, url: str) -> None:
        from redis import Redis
        from rq import Queue

        self.url = url
        self.redis = Redis.from_url(url)
        self.q = Queue(QUEUE, connection=self.redis)
        self.settings = {
            "version": f"rq {version('rq')}, redis-py {version('redis')}",
            "workers": f"{WORKERS} × `rq worker -w {WORKER_CLASS}` (no fork per job)",
            "enqueue": "Queue.enqueue",
            "bulk": "Queue.enqueue_many (one pipeline per batch)",
        }

    def reset(self) -> None:
        self.redis.flushall()

    def enqueue(self, i: int) -> None:
        self.q.enqueue(noop, i)

    def enqueue_batch(self, items) -> None:
        self.q.enqueue_many([self.q.prepare_data(noop, (i,)) for i in items])

    def mark(self, t: float) -> None:
        self.q.enqueue(mark, t)

    def start_workers(self, w) -> None:
        rq = os.path.join(os.path.dirname(sys.executable), "rq")
        for _ in range(WORKERS):
            w.start([rq, "worker", "-u", self.url, "-w", WORKER_CLASS, "-q", "--disable-job-desc-logging",
                     QUEUE], "rq")

    def close(self) -> None:
        self.redis.close()

