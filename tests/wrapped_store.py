"""A real store seen through a wrapper: tests override ``execute`` to count
or delay what reaches it; everything else passes through."""

from __future__ import annotations

from typing import Any

from nexq.store import Batch, Store


class WrappedStore(Store):
    """``inner`` with every call passed through (``execute`` to override)."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.kind = inner, inner.kind

    async def execute(self, batch: Batch) -> list[Any]:
        return await self.inner.execute(batch)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)

    async def ping(self) -> float:
        return await self.inner.ping()

    async def save(self) -> None:
        await self.inner.save()

    async def aclose(self) -> None:
        """The inner store belongs to the fixture."""
