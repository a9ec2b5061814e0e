"""Celery: broker redis db 0, no result backend (its default)."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version

from celery import Celery, group

from .base import ENV_REDIS, RedisPeer, record_done, record_start

URL = os.environ.get(ENV_REDIS, "redis://127.0.0.1:6379")
POOL = os.environ.get("PEERBENCH_CELERY_POOL", "prefork")
CONCURRENCY = int(os.environ.get("PEERBENCH_CELERY_CONCURRENCY", "2"))
PROCESSES = int(os.environ.get("PEERBENCH_CELERY_PROCESSES", "1"))

app = Celery("peerbench", broker=URL + "/0")
app.conf.update(
    task_serializer="json", accept_content=["json"],
    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(i):
    record_done()


@app.task(name="mark")
def mark(t):
    record_start(t)


class Peer(RedisPeer):
    name = "celery"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.settings = {
            "version": f"celery {version('celery')}, kombu {version('kombu')}, redis-py {version('redis')}",
            "workers": f"{PROCESSES} × `celery worker -P {POOL} -c {CONCURRENCY} --without-gossip --without-mingle "
                       "--without-heartbeat` (prefetch multiplier 4, acks early: defaults)",
            "enqueue": "task.apply_async",
            "bulk": "no bulk API: group(...).apply_async() per batch (one publish per task)",
        }

    def enqueue(self, i: int) -> None:
        noop.apply_async((i,))

    def enqueue_batch(self, items) -> None:
        group(noop.s(i) for i in items).apply_async()

    def mark(self, t: float) -> None:
        mark.apply_async((t,))

    def start_workers(self, w) -> None:
        celery = os.path.join(os.path.dirname(sys.executable), "celery")
        for k in range(PROCESSES):
            w.start([celery, "-A", "benchmarks.peerbench.celery_peer", "worker", "-P", POOL, "-c", str(CONCURRENCY),
                     "-n", f"w{k}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
                     "-l", "warning"], "celery")
