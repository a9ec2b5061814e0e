"""Dramatiq: RedisBroker (db 0), no Results middleware (its default);
`dramatiq` CLI with 2 processes × 8 threads."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from .base import ENV_REDIS, RedisPeer, record_done, record_start

URL = os.environ.get(ENV_REDIS, "redis://127.0.0.1:6379")
PROCESSES, THREADS = 2, 8

broker = RedisBroker(url=URL + "/0")
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0, queue_name="peerbench")
def noop(i):
    record_done()


@dramatiq.actor(max_retries=0, queue_name="peerbench")
def mark(t):
    record_start(t)


class Peer(RedisPeer):
    name = "dramatiq"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.settings = {
            "version": f"dramatiq {version('dramatiq')}, redis-py {version('redis')}",
            "workers": f"`dramatiq -p {PROCESSES} -t {THREADS}` (defaults)",
            "enqueue": "actor.send",
            "bulk": "no bulk API: actor.send per message",
        }

    def enqueue(self, i: int) -> None:
        noop.send(i)

    def enqueue_batch(self, items) -> None:
        for i in items:
            noop.send(i)

    def mark(self, t: float) -> None:
        mark.send(t)

    def start_workers(self, w) -> None:
        exe = os.path.join(os.path.dirname(sys.executable), "dramatiq")
        w.start([exe, "benchmarks.peerbench.dramatiq_peer", "-p", str(PROCESSES), "-t", str(THREADS),
                 "-Q", "peerbench"], "dramatiq")
