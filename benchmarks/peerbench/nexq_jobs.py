"""The Nexq app of the peer benchmark, written as a user writes one.

    nexq worker --processes 2 --store redis://127.0.0.1:PORT --namespace NS \\
        --app benchmarks.peerbench.nexq_jobs:app

- ``noop``: the job every queue runs (base.record_done: one blocking INCR on
  the store server, as the other queues' no-op jobs do); an ``async def``
  calling it, or with ``PEERBENCH_NEXQ_JOB=thread`` a plain function, which
  Nexq runs in a worker thread (how its docs say to write blocking code);
- ``mark``: records when it starts (pick-up latency);
- ``bare``: returns at once, for the in-process engine figures (counted by
  the queue's succeeded counter, as in the runs before 2026-12-06).
"""

from __future__ import annotations

import os
from typing import Any

from nexq import Nexq

from .base import record_done, record_start


def make_app(store: str | None = None, namespace: str = "nexq") -> Nexq:
    app = Nexq(store, namespace=namespace)

    if os.environ.get("PEERBENCH_NEXQ_JOB") == "thread":

        @app.task("noop")
        def noop_in_thread(payload: Any) -> None:
            record_done()

    else:

        @app.task("noop")
        async def noop(payload: Any) -> None:
            record_done()

    @app.task("mark")
    async def mark(payload: Any) -> None:
        record_start(payload)

    @app.task("bare")
    async def bare(payload: Any) -> None:
        return None

    return app


app = make_app()
