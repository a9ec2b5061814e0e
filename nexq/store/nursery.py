"""A nursery for a store's own background tasks, around the caller's code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


@asynccontextmanager
async def background_nursery() -> AsyncIterator[trio.Nursery]:
    """``trio.open_nursery()`` for background tasks (connections) whose body
    is the caller's code.

    Promise: an exception raised by the body, and by nothing else, leaves as
    itself (same object, same ``__cause__``/``__context__``), not wrapped in
    an ExceptionGroup, so ``except ValueError`` around ``async with
    open_store(...)`` behaves the same on every store. When a background
    task failed too, the group is raised unchanged.
    """
    raised: BaseException | None = None
    unwrapped: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                yield nursery
            except BaseException as exc:
                raised = exc
                raise
    except BaseExceptionGroup as group:
        if raised is None or len(group.exceptions) != 1 or group.exceptions[0] is not raised:
            raise
        unwrapped = raised
    if unwrapped is not None:
        # Raised outside the ``except`` so Python does not chain the group as
        # its __context__; what the user's exception carried stays as it was.
        context, suppress = unwrapped.__context__, unwrapped.__suppress_context__
        try:
            raise unwrapped
        finally:
            unwrapped.__context__, unwrapped.__suppress_context__ = context, suppress
