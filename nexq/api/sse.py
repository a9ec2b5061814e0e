"""``GET /api/events``: Server-Sent Events of the runtime's event hub.

Each stream sends the hub's ``task`` and ``attempt`` events as they happen
in this process, and a ``stats`` event (:func:`nexq.api.stats.snapshot`)
about every second, so changes made by other processes show too. A stream
has no response timeout; it ends when the client leaves or the server shuts
down (:meth:`ApiState.begin_shutdown` cancels its current wait).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import orjson
import trio
from quart import Response, current_app, request

from ..errors import StoreUnavailable
from .routing import Routes
from .state import ApiState, current_state
from .stats import snapshot

STATS_INTERVAL = 1.0
STATS_MINUTES = 15  # the stats events' throughput window: enough for a live chart
RETRY_MS = 3000

T = TypeVar("T")

routes = Routes()


class _Stopped(Exception):
    """The server began shutting down while the stream waited."""


def frame(kind: str, data: Any, event_id: int) -> bytes:
    """One SSE message (JSON data on one line, so no line splitting is needed)."""
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    return b"event: %s\nid: %d\ndata: %s\n\n" % (kind.encode(), event_id, body)


async def _until_shutdown(state: ApiState, deadline: float, fn: Callable[[], Awaitable[T]]) -> T | None:
    """``await fn()``, or None at ``deadline``; raises _Stopped at shutdown.

    The cancel scope lives only for this one wait (never across a yield of
    the stream's generator), which is what lets shutdown cancel it.
    """
    if state.shutting_down.is_set():
        raise _Stopped
    with trio.move_on_at(deadline) as scope:
        state.waits.add(scope)
        try:
            return await fn()
        finally:
            state.waits.discard(scope)
    if state.shutting_down.is_set():
        raise _Stopped
    return None


async def stream(state: ApiState) -> AsyncIterator[bytes]:
    """The event stream of one client, until shutdown or disconnect."""
    rt = state.runtime
    n = 0
    async with rt.events.subscribe() as events:
        yield b"retry: %d\n\n" % RETRY_MS
        next_stats = trio.current_time()
        while True:
            try:
                if trio.current_time() >= next_stats:
                    next_stats = trio.current_time() + STATS_INTERVAL
                    n += 1
                    try:
                        stats = await _until_shutdown(state, trio.current_time() + 10,
                                                      lambda: snapshot(rt, STATS_MINUTES))
                    except StoreUnavailable as exc:
                        # The stream outlives a store outage: say so, keep going.
                        yield frame("error", {"error": {"code": "store_unavailable",
                                                        "message": str(exc), "details": None}}, n)
                        continue
                    if stats is not None:
                        yield frame("stats", stats, n)
                    continue
                event = await _until_shutdown(state, next_stats, events.receive)
            except _Stopped:
                return
            if event is not None:
                n += 1
                data = dict(event)
                yield frame(str(data.pop("kind", "message")), data, n)


@routes.route("GET", "/api/events", tag="events",
              summary="Server-Sent Events: task, attempt and (every second) stats",
              content_type="text/event-stream", responses={200: {"type": "string"}})
async def event_stream() -> Response:
    # HEAD would otherwise run the endless stream just to discard it.
    body: Any = b"" if request.method == "HEAD" else stream(current_state())
    resp: Response = current_app.response_class(body, mimetype="text/event-stream")
    resp.timeout = None  # an event stream is meant to stay open
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"  # proxies: pass events through at once
    return resp
