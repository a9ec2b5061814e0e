"""The app the deployment tests load with ``--app tests.topologies.app:app``.

Handlers whose behaviour the payload chooses; files under the payload's
``dir`` say what happened inside the worker processes. With
``NEXQ_TEST_CRON=1`` in the environment the app also has a cron entry that
fires ``tick`` every second (6 fields, seconds last).
"""

from __future__ import annotations

import os
import time
from typing import Any

import trio

from nexq import Context, Nexq, RetryPolicy

app = Nexq()


@app.task("stamp", max_retries=0)
async def stamp(payload: Any) -> float:
    """When the handler started (unix seconds)."""
    return time.time()


@app.task("boom", max_retries=2, retry=RetryPolicy(base=0.05, cap=0.2))
async def boom(payload: Any) -> None:
    """Always fails: retried twice (quickly), then dead."""
    raise RuntimeError("boom")


@app.task("tick", max_retries=0)
async def tick(payload: Any) -> None:
    """The cron entry's task: nothing to do, it is counted by its enqueue."""


@app.task("hang", max_retries=0)
async def hang(ctx: Context, payload: Any) -> None:
    """Sleep until cancelled; then write the time of the cancel (unix
    seconds) to ``{dir}/{task id}.cancelled``."""
    try:
        await trio.sleep(payload.get("seconds", 600))
    except trio.Cancelled:
        _write(os.path.join(payload["dir"], f"{ctx.id}.cancelled"), repr(time.time()))
        raise


@app.task("gate", max_retries=0)
async def gate(payload: Any) -> int:
    """Wait until the file ``payload['open']`` exists, then return this pid."""
    while not os.path.exists(payload["open"]):
        await trio.sleep(0.05)
    return os.getpid()


def _write(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)  # readers never see a half-written file


if os.environ.get("NEXQ_TEST_CRON") == "1":
    app.cron("every-second", "* * * * * *", "tick")
