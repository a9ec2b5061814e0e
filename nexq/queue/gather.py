"""Run one async function over many items at once, as if called one by one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import trio

T = TypeVar("T")
A = TypeVar("A")


async def gather(fn: Callable[[A], Awaitable[T]], items: Iterable[A]) -> list[T]:
    """``fn(item)`` for every item, concurrently; the results in order (the
    first error wins)."""
    args = list(items)
    out: list[Any] = [None] * len(args)

    async def one(i: int) -> None:
        out[i] = await fn(args[i])

    try:
        async with trio.open_nursery() as nursery:
            for i in range(len(args)):
                nursery.start_soon(one, i)
    except BaseExceptionGroup as group:
        # Callers handle StoreUnavailable & co. as if they had made the
        # calls one by one: hand them the first error, not a group.
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return out
