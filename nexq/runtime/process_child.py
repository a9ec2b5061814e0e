"""The handler process of an ``executor="process"`` pool (see :mod:`.process_pool`).

Started as ``python -m nexq.runtime.process_child`` by the pool, never by a
user. It reads requests from stdin and writes replies to stdout, each a
frame: a 4-byte big-endian length and that many bytes of JSON. The first
frame is the parent's ``sys.path``; then each request ``{"target":
"module:qualname", "payload": ...}`` gets one reply, ``{"ok": true,
"result": ...}`` or ``{"ok": false, "type", "message", "traceback"[,
"kind": "retry"|"defer", "delay", "reason"]}``. EOF on stdin ends it.

The parent owns its life: it ignores SIGINT and SIGTERM (a Ctrl-C or a
``docker stop`` reaching the whole process group must not kill a task the
worker is draining), and exits when the parent process is gone.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
import traceback
from typing import IO, Any

from ..codec import dumps, loads
from ..errors import Defer, Retry
from .process_pool import HEADER

ORPHAN_CHECK = 0.5  # seconds between checks that the parent still lives


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's value, or None at EOF."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    return loads(body) if len(body) == size else None


def write_frame(stream: IO[bytes], body: bytes) -> None:
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()


def resolve(target: str, cache: dict[str, Any]) -> Any:
    """The callable ``module:qualname`` names (imported once)."""
    fn = cache.get(target)
    if fn is None:
        module_name, _, qualname = target.partition(":")
        fn = importlib.import_module(module_name)
        for part in qualname.split("."):
            fn = getattr(fn, part)
        fn = cache[target] = getattr(fn, "fn", fn)  # @app.task leaves a TaskDef at the name
    return fn


def handle(request: dict[str, Any], cache: dict[str, Any]) -> bytes:
    """Run one request; the reply frame's body. Never raises."""
    try:
        result = resolve(request["target"], cache)(request["payload"])
    except BaseException as exc:  # noqa: BLE001 - whatever the handler raised is its attempt's outcome
        reply: dict[str, Any] = {"ok": False, "type": type(exc).__name__, "message": str(exc),
                                 "traceback": traceback.format_exc(limit=20)}
        if isinstance(exc, (Retry, Defer)):
            reply.update(kind="retry" if isinstance(exc, Retry) else "defer", delay=exc.delay,
                         reason=str(exc))
        return dumps(reply)
    try:
        return dumps({"ok": True, "result": result})
    except TypeError as exc:
        return dumps({"ok": False, "type": "ResultNotSerializable", "traceback": None,
                      "message": f"the handler returned a value JSON cannot carry: {exc}"})


def _exit_when_orphaned(parent: int) -> None:
    # A worker killed with SIGKILL cannot stop us: notice that we were
    # reparented and end a handler that would otherwise burn a core for nobody.
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK)
    os._exit(1)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with os.fdopen(os.dup(0), "rb") as requests, os.fdopen(os.dup(1), "wb") as replies:
        # The protocol has the pipes to itself: what a handler prints goes to
        # stderr (the worker's log), and it reads nothing from stdin.
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)
        threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
        hello = read_frame(requests)
        if hello is None:
            return
        sys.path[:0] = [p for p in hello["sys_path"] if p not in sys.path]
        cache: dict[str, Any] = {}
        while (request := read_frame(requests)) is not None:
            write_frame(replies, handle(request, cache))


if __name__ == "__main__":
    main()
