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


@app.task("record", max_retries=10)
async def record(payload: Any) -> int:
    """Append payload['i'] to $NEXQ_TEST_RECORD (one line per execution),
    then sleep payload['seconds']: counts how often each task ran."""
    path = os.environ["NEXQ_TEST_RECORD"]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{payload['i']}\n".encode())
    finally:
        os.close(fd)
    await trio.sleep(payload.get("seconds", 0))
    return os.getpid()


@app.task("die", max_retries=2)
async def die(payload: Any) -> None:
    """A poison pill: kills the worker process running it."""
    os.kill(os.getpid(), 9)
