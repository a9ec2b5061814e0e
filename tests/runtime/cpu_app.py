"""Handlers run with ``executor="process"``: importable by module path, as
the handler processes need them. The payload chooses the behaviour."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from nexq.app import Nexq
from nexq.errors import Retry

app = Nexq()


@app.task("burn", executor="process", max_retries=0)
def burn(payload: Any) -> dict[str, Any]:
    """Spin the CPU for payload['seconds'] (default: none); say which process ran it."""
    end, spins = time.perf_counter() + payload.get("seconds", 0), 0
    while time.perf_counter() < end:
        spins += 1
    return {"pid": os.getpid(), "spins": spins}


@app.task("spin", executor="process", max_retries=0)
def spin(payload: Any) -> None:
    """Write this process's pid to payload['pidfile'], then spin forever."""
    Path(payload["pidfile"]).write_text(str(os.getpid()))
    while True:
        pass


@app.task("fail", executor="process", max_retries=0)
def fail(payload: Any) -> None:
    raise ValueError(f"bad input {payload}")


@app.task("exit", executor="process", max_retries=0)
def exit_now(payload: Any) -> None:
    """The handler's process dies under it."""
    os._exit(3)


@app.task("again", executor="process", max_retries=3)
def again(payload: Any) -> int:
    """Raise Retry on the first run (marked in payload['mark']), succeed on the next."""
    mark = Path(payload["mark"])
    if not mark.exists():
        mark.write_text("tried")
        raise Retry(delay=0.05)
    return os.getpid()
