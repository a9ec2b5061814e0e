"""Shared bits of the benchmark scripts: a server to run against, a machine line,
and a store wrapper that counts round trips and commands."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nexq.store import Batch, Store  # noqa: E402


def machine_line() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, limit: float = 10) -> None:
    """Return once 127.0.0.1:``port`` accepts; RuntimeError if ``proc``
    exits first or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.02)


def write_results(out_dir: str, stem: str, doc: Any, md: str) -> None:
    """``doc`` as ``{stem}.json`` and ``md`` as ``{stem}.md`` in ``out_dir``; prints md."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, stem)
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(md)
    print(md)


@contextmanager
def local_redis() -> Iterator[str]:
    """A throw-away redis-server on a free port (the test kit's)."""
    from tests.servers import redis_server

    with redis_server() as server:
        yield server.url


@contextmanager
def store_url(url: str | None) -> Iterator[str]:
    """``url`` if given, else a throw-away local redis-server's."""
    if url:
        yield url
    else:
        with local_redis() as local:
            yield local


class Counting(Store):
    """Wraps a store; counts round trips and commands sent through it."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.kind = inner, inner.kind
        self.round_trips = self.commands = 0

    async def execute(self, batch: Batch) -> list[Any]:
        self.round_trips += 1
        self.commands += len(batch.ops)
        return await self.inner.execute(batch)

    async def get(self, key: str) -> bytes | None:
        self.round_trips += 1
        self.commands += 1
        return await self.inner.get(key)

    async def mget(self, keys: Any) -> list[bytes | None]:
        self.round_trips += 1
        self.commands += 1
        return await self.inner.mget(keys)

    async def ping(self) -> float:
        return await self.inner.ping()

    async def save(self) -> None:
        await self.inner.save()

    async def aclose(self) -> None:
        await self.inner.aclose()
