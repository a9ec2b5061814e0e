"""Routes declared once: validation and the OpenAPI document from one table.

Each route module keeps a :class:`Routes` table and declares its handlers,
plain module-level async functions, with ``@routes.route(...)``: method,
path, the schemas of its query string and JSON body, and what it answers.
:func:`install` serves a table on an app (parsing the query string and body
against those schemas before the handler runs); :func:`openapi_document`
renders the same tables as OpenAPI, so documentation and validation cannot
drift. Handlers find the runtime through the app
(:func:`nexq.api.state.current_runtime`), so a table can be served alone.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import attrs
import orjson
import trio
from quart import Quart, Response, request

from ..config import Settings
from .errors import ERROR_SCHEMA_REF, ApiError, invalid
from .schemas import ERROR
from .state import current_runtime
from .validation import Issue, JsonSchema, parse_query, validate

Handler = Callable[..., Awaitable[Response]]
H = TypeVar("H", bound=Handler)
BodyLimit = Callable[[Settings], int]
SMALL_BODY = 64 * 1024  # bodies of admin calls: a queue name at most

_STATUS_TEXT = {
    200: "OK", 201: "Created", 400: "Invalid request", 401: "Missing or wrong bearer token",
    403: "Cross-site request refused", 404: "Not found", 409: "Conflict with the task's state",
    413: "Body or payload too large", 415: "Body is not JSON", 503: "Store unavailable",
}


@attrs.frozen
class Operation:
    """One documented, validated route and the handler that serves it."""

    method: str
    path: str  # OpenAPI style: /api/tasks/{id}
    handler: Handler
    summary: str
    tag: str
    body: JsonSchema | None = None
    body_required: bool = True
    body_limit: BodyLimit | None = None
    query: dict[str, JsonSchema] | None = None
    responses: dict[int, JsonSchema | None] = attrs.field(factory=dict)
    content_type: str = "application/json"
    secured: bool = True


class Routes:
    """The routes of one module, in declaration order (like a blueprint)."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        body: JsonSchema | None = None,
        body_required: bool = True,
        body_limit: BodyLimit | None = None,
        query: dict[str, JsonSchema] | None = None,
        responses: dict[int, JsonSchema | None] | None = None,
        content_type: str = "application/json",
        secured: bool = True,
    ) -> Callable[[H], H]:
        """Declare the decorated handler as ``method path``; it is returned unchanged.

        The handler gets the path parameters as keyword arguments, plus
        ``query`` (typed, validated dict) when ``query`` is given and
        ``body`` (validated JSON) when ``body`` is given. ``body_limit``
        gives the largest body accepted (bytes) under the runtime's
        settings (default :data:`SMALL_BODY`); more is a 413.
        """

        def declare(handler: H) -> H:
            self.operations.append(Operation(
                method, path, handler, summary, tag, body, body_required, body_limit, query,
                dict(responses or {}), content_type, secured))
            return handler

        return declare


def install(app: Quart, *tables: Routes) -> None:
    """Serve every operation of ``tables`` on ``app``, validating first.

    The app needs an ApiState (``app.extensions["nexq"]``) by the time it
    serves a request: handlers and body limits read the runtime from it.
    """
    for table in tables:
        for op in table.operations:
            rule = re.sub(r"\{(\w+)\}", r"<\1>", op.path)
            app.add_url_rule(rule, f"{op.method.lower()}:{op.path}", _view(op), methods=[op.method])


def _view(op: Operation) -> Handler:
    async def view(**params: Any) -> Response:
        if op.query is not None:
            try:
                params["query"] = parse_query(op.query, request.args)
            except Issue as issue:
                raise invalid(issue.field, issue.message) from None
        if op.body is not None:
            limit = body_limit(op, current_runtime().settings)
            params["body"] = await read_json(op.body, limit, required=op.body_required)
        return await op.handler(**params)

    return view


def openapi_document(tables: Iterable[Routes], *, title: str, version: str, secured: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every operation in ``tables``; ``secured``:
    the API asks for a bearer token."""
    paths: dict[str, dict[str, Any]] = {}
    for op in (op for table in tables for op in table.operations):
        item = paths.setdefault(op.path, {})
        params = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1}}
            for name in re.findall(r"\{(\w+)\}", op.path)
        ]
        params += [
            {"name": name, "in": "query", "required": False, "allowEmptyValue": True, "schema": schema}
            for name, schema in (op.query or {}).items()
        ]
        doc: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": re.sub(r"\W+", "_", f"{op.method.lower()}{op.path}").strip("_"),
            "responses": _responses(op, secured),
        }
        if params:
            doc["parameters"] = params
        if op.body is not None:
            doc["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": op.body}},
            }
        if op.secured and secured:
            doc["security"] = [{"bearer": []}]
        item[op.method.lower()] = doc
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _responses(op: Operation, secured: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    codes = dict(op.responses)
    if op.body is not None or op.query:
        codes.setdefault(400, None)
    if op.body is not None:
        codes.setdefault(413, None)
        codes.setdefault(415, None)
    if op.secured and secured:
        codes.setdefault(401, None)
    codes.setdefault(503, None)
    for code in sorted(codes):
        schema = codes[code]
        entry: dict[str, Any] = {"description": _STATUS_TEXT.get(code, "OK")}
        if code >= 400:
            entry["content"] = {"application/json": {"schema": ERROR_SCHEMA_REF}}
        elif schema is not None:
            entry["content"] = {op.content_type: {"schema": schema}}
        out[str(code)] = entry
    return out


async def read_json(schema: JsonSchema, limit: int, *, required: bool = True) -> Any:
    """The request's JSON body, valid against ``schema``.

    Raises ApiError: 413 when the Content-Length or the bytes received pass
    ``limit`` (reading stops there), 408 when the body does not arrive in
    time, and what :func:`parse_json` raises.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    chunks, size = [], 0
    timeout = request.body_timeout if request.body_timeout is not None else float("inf")
    with trio.move_on_after(timeout) as scope:
        async for chunk in request.body:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    if scope.cancelled_caught:
        raise body_timeout(timeout)
    return parse_json(b"".join(chunks), request.mimetype, schema, required=required)


def parse_json(raw: bytes, mimetype: str, schema: JsonSchema, *, required: bool = True) -> Any:
    """A received body (declared as ``mimetype``) decoded and valid against
    ``schema``; ``{}`` for an empty body that is not ``required``.

    Raises ApiError: 415 when a body is not declared JSON, 400 when it is
    missing, malformed or invalid (naming the first bad field).
    """
    if not raw.strip():
        if required:
            raise invalid("body", "a JSON body is required")
        return {}
    # Requiring the JSON media type also makes a cross-site browser
    # request need a CORS preflight, which this API never grants.
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "the body must be sent as application/json",
                       {"content_type": mimetype or None})
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"body: malformed JSON ({exc})", {"field": "body"}) from None
    issues = validate(schema, value)
    if issues:
        first = issues[0]
        raise invalid(first.field, first.message,
                      [{"field": i.field, "message": i.message} for i in issues[:20]])
    return value


def body_limit(op: Operation, settings: Settings) -> int:
    """The largest body ``op`` accepts under ``settings`` (bytes)."""
    return op.body_limit(settings) if op.body_limit else SMALL_BODY


def body_timeout(timeout: float) -> ApiError:
    return ApiError(408, "request_timeout", f"body: not received within {timeout:g} s")


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"body: larger than {limit} bytes",
                    {"field": "body", "limit": limit})
