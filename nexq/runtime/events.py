"""In-process event hub: task and worker changes for the SSE stream.

Producers call ``publish`` (never blocks; a slow subscriber drops events
rather than slowing the queue). Changes made by other processes reach the
dashboard through the API's periodic stats events instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio


class EventHub:
    """Fan-out of small JSON-ready events to any number of subscribers."""

    def __init__(self, buffer: int = 1000) -> None:
        self._subscribers: set[trio.MemorySendChannel[dict[str, Any]]] = set()
        self._buffer = buffer
        self.dropped = 0

    def publish(self, kind: str, **data: Any) -> None:
        if not self._subscribers:
            return
        event = {"kind": kind, **data}
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                self.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(send)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        send, receive = trio.open_memory_channel[dict[str, Any]](self._buffer)
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
