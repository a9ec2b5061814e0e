"""The enqueue routes as plain ASGI, in front of the Quart app.

``POST /api/tasks`` and ``POST /api/tasks/batch`` are the API's hot path.
Through Quart each request builds a request context, a werkzeug Request
and Response and runs the URL map, hooks and two extra trio tasks: about
as much CPU as the enqueue itself. :class:`FastEnqueue` serves those two
routes straight from the ASGI scope and hands every other request to
Quart. It keeps Quart's behaviour: the same route table entries (schema,
body limit: so also the same OpenAPI document), the same access rules and
security headers (:mod:`nexq.api.access`), the same body parsing
(:func:`~nexq.api.routing.parse_json`), handler cores and error mapping
(:func:`~nexq.api.errors.as_api_error`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs
import trio
from quart_trio import QuartTrio
from werkzeug.http import parse_options_header
from werkzeug.sansio.utils import get_content_length, get_host

from ..runtime.runtime import Runtime
from . import routes_tasks
from .access import check_access, security_headers
from .errors import JSON_MIMETYPE, as_api_error, dump_json, error_body
from .routing import Operation, body_limit, body_timeout, parse_json, too_large
from .state import api_state

Core = Callable[[Runtime, Any], Awaitable[tuple[Any, int]]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

# The Quart handler of a route -> the core it wraps, served here directly.
DIRECT: dict[Callable[..., Any], Core] = {
    routes_tasks.create: routes_tasks.enqueue_one,
    routes_tasks.create_batch: routes_tasks.enqueue_batch,
}
_HEADERS = [(b"content-type", JSON_MIMETYPE.encode())]
_SECURITY = [
    (name.lower().encode(), value.encode())
    for name, value in security_headers(JSON_MIMETYPE, "/api/tasks").items()]


@attrs.frozen
class _Route:
    op: Operation
    core: Core
    limit: int  # largest body, bytes


class FastEnqueue:
    """ASGI app serving the routes of :data:`DIRECT` for the Quart ``app``
    (made by :func:`nexq.api.create_app`) and passing everything else to
    ``app``'s own ASGI handler."""

    def __init__(self, app: QuartTrio, quart: ASGIApp) -> None:
        self.app, self.quart = app, quart
        self.runtime = api_state(app).runtime
        self.routes = {
            op.path: _Route(op, DIRECT[op.handler], body_limit(op, self.runtime.settings))
            for op in routes_tasks.routes.operations if op.method == "POST" and op.handler in DIRECT
        }

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            route = self.routes.get(scope["path"])
            if route is not None:
                await self._serve(route, scope, receive, send)
                return
        await self.quart(scope, receive, send)

    async def _serve(self, route: _Route, scope: Any, receive: Any, send: Any) -> None:
        headers = _headers(scope["headers"])

        def header(name: str) -> str | None:
            value = headers.get(name.encode())
            return value.decode("latin1") if value is not None else None

        extra: Iterable[tuple[str, str]] = ()
        try:
            check_access(self.runtime.settings.api_token, "POST", scope["path"], header,
                         lambda: self._host(scope, header))
            raw = await _read(receive, header, route.limit, self.app.config["BODY_TIMEOUT"])
            if raw is None:
                return  # the client left before sending its body: nobody to answer
            mimetype = _mimetype(headers.get(b"content-type"))
            body = parse_json(raw, mimetype, route.op.body or {}, required=route.op.body_required)
            data, status = await route.core(self.runtime, body)
            payload = dump_json(data)
        except Exception as exc:  # noqa: BLE001 - as Quart's error handlers: one JSON error shape
            err = as_api_error(exc)
            status, payload, extra = err.status, error_body(err), err.headers.items()
        await send({"type": "http.response.start", "status": status, "headers": [
            *_HEADERS, (b"content-length", str(len(payload)).encode()), *_SECURITY,
            *((name.lower().encode(), value.encode()) for name, value in extra)]})
        await send({"type": "http.response.body", "body": payload})

    def _host(self, scope: Any, header: Callable[[str], str | None]) -> str:
        """The request's host as werkzeug (so Quart) derives it."""
        host = header("host")
        if host is None and scope["http_version"] < "1.1":
            host = self.app.config["SERVER_NAME"] or ""
        return get_host(scope["scheme"], host, scope.get("server"))


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Request headers by lower-case name; the first of repeated ones
    (as werkzeug's ``Headers.get``)."""
    out: dict[bytes, bytes] = {}
    for name, value in raw:
        out.setdefault(name.lower(), value)
    return out


class _Body:
    """A request body as its chunks arrive, at most ``limit`` bytes."""

    __slots__ = ("chunks", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.limit, self.size = limit, 0

    def add(self, message: Any) -> bool | None:
        """Add the body chunk of an ASGI ``message``: whether the body is
        complete; None for a disconnect. Raises ApiError 413 past the limit."""
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit)
        self.chunks.append(chunk)
        return not message.get("more_body", False)


def _mimetype(content_type: bytes | None) -> str:
    """The media type of a Content-Type, lower-case, as werkzeug's
    ``Request.mimetype`` (which parses anything but the usual value)."""
    if content_type == b"application/json":
        return "application/json"
    return parse_options_header((content_type or b"").decode("latin1"))[0].lower()


async def _read(receive: Any, header: Callable[[str], str | None], limit: int, timeout: float | None) -> bytes | None:
    """The request body; None if the client disconnected first. Raises
    ApiError 413 past ``limit`` bytes (declared or received), 408 after
    ``timeout`` seconds."""
    declared = _content_length(header)
    if declared is not None and declared > limit:
        raise too_large(limit)
    body = _Body(limit)
    wait = timeout if timeout is not None else float("inf")
    deadline = trio.current_time() + wait
    # Hypercorn on trio has usually queued the whole body on the request's
    # memory channel before the app runs: take what is there without the
    # timeout's cancel scope and the checkpoints of an await (a tenth of
    # the route's own CPU); wait, under the timeout, only for the rest.
    nowait = _receive_nowait(receive)
    while nowait is not None:
        try:
            message = nowait()
        except trio.WouldBlock:
            break
        done = body.add(message)
        if done is None:
            return None  # http.disconnect
        if done:
            return b"".join(body.chunks)
    with trio.CancelScope(deadline=deadline) as scope:
        while True:
            done = body.add(await receive())
            if done is None:
                return None  # http.disconnect
            if done:
                break
    if scope.cancelled_caught:
        raise body_timeout(wait)
    return b"".join(body.chunks)


def _receive_nowait(receive: Any) -> Callable[[], Any] | None:
    """The non-blocking form of ASGI ``receive`` when it is a trio memory
    channel's ``receive`` (Hypercorn's, under trio); else None."""
    channel = getattr(receive, "__self__", None)
    if isinstance(channel, trio.MemoryReceiveChannel) and getattr(receive, "__func__", None) is _CHANNEL_RECEIVE:
        return channel.receive_nowait
    return None


_CHANNEL_RECEIVE = trio.MemoryReceiveChannel.receive


def _content_length(header: Callable[[str], str | None]) -> int | None:
    """The declared body length as werkzeug's ``get_content_length`` gives
    it (so Quart's ``request.content_length``), with the usual header (a
    plain decimal, no Transfer-Encoding) decided without it."""
    length, encoding = header("content-length"), header("transfer-encoding")
    if encoding is None and length is not None and length.isdigit() and length.isascii():
        return int(length)
    return get_content_length(length, encoding)
