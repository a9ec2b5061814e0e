"""An app for process tests: handlers whose behaviour the payload chooses."""

from __future__ import annotations

import os
from typing import Any

import trio

from nexq.app import Nexq

app = Nexq()


@app.task("noop", max_retries=0)
async def noop(payload: Any) -> Any:
    return payload


@app.task("sleep", max_retries=5)
async def sleep(payload: Any) -> dict[str, Any]:
    """Sleep payload['seconds'], then say which process ran it."""
    await trio.sleep(payload.get("seconds", 0))
    return {"pid": os.getpid()}


@app.task("stamp", max_retries=0)
async def stamp(payload: Any) -> float:
    """When the handler started (unix seconds): for pick-up latency."""
    import time

    return time.time()
