"""Shared bits of the benchmark scripts: a server to run against, a machine line,
and a store wrapper that counts round trips and commands."""

from __future__ import annotations

import os
import platform
import sys
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


@contextmanager
def local_redis() -> Iterator[str]:
    """A throw-away redis-server on a free port (the test kit's)."""
    from tests.servers import redis_server

    with redis_server() as server:
        yield server.url


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
