"""The API's one error shape and the handlers that produce it.

Every error body is ``{"error": {"code": ..., "message": ..., "details": ...}}``;
no handler ever returns HTML or a traceback. Handlers raise :class:`ApiError`
for expected failures; the app-level handlers registered by
:func:`install_error_handlers` turn HTTP exceptions (404, 405, 413, ...),
:class:`~nexq.errors.StoreUnavailable` and anything unexpected into the same
shape.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..errors import StoreFull, StoreUnavailable

log = logging.getLogger("nexq.api")

JSON_MIMETYPE = "application/json"

# Werkzeug's exception classes -> our stable error codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    503: "store_unavailable",
}


class ApiError(Exception):
    """An expected failure with its HTTP status, stable code and details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers or {}


def invalid(field: str, message: str, errors: list[dict[str, str]] | None = None) -> ApiError:
    """A 400 naming the offending field (``details.field``)."""
    return ApiError(
        400,
        "invalid_request",
        f"{field}: {message}",
        {"field": field, "errors": errors or [{"field": field, "message": message}]},
    )


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} {ident!r} not found", {"id": ident})


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response encoded with orjson (strict: no NaN/Infinity)."""
    resp = Response(dump_json(body), status=status, mimetype=JSON_MIMETYPE)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def dump_json(body: Any) -> bytes:
    """``body`` as the API's JSON (orjson, strict: no NaN/Infinity)."""
    # Non-str keys: queue stats key depth by (integer) priority.
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


def error_body(err: ApiError) -> bytes:
    """The JSON error body of ``err`` (the one error shape)."""
    return dump_json({"error": {"code": err.code, "message": err.message, "details": err.details}})


def error_response(err: ApiError) -> Response:
    resp = Response(error_body(err), status=err.status, mimetype=JSON_MIMETYPE)
    for name, value in err.headers.items():
        resp.headers[name] = value
    return resp


def as_api_error(err: Exception) -> ApiError:
    """The ApiError a failure other than an HTTPException is answered with:
    itself, 503 for a full or unreachable store, else a 500 (logged with
    its traceback here; the client learns nothing internal)."""
    if isinstance(err, ApiError):
        return err
    if isinstance(err, StoreFull):
        return ApiError(503, "store_full", str(err))
    if isinstance(err, StoreUnavailable):
        log.warning("store unavailable: %s", err)
        return ApiError(503, "store_unavailable", f"the store cannot be reached: {err}")
    log.exception("unhandled error in API request", exc_info=err)
    return ApiError(500, "internal_error", "internal server error")


def install_error_handlers(app: QuartTrio) -> None:
    """Route every failure through :func:`error_response`."""

    @app.errorhandler(HTTPException)
    async def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        headers: dict[str, str] = {}
        details: Any = None
        if isinstance(err, MethodNotAllowed) and err.valid_methods:
            headers["Allow"] = ", ".join(sorted(err.valid_methods))
            details = {"allowed": sorted(err.valid_methods)}
        message = {
            404: "no such route",
            405: "method not allowed on this route",
            413: "request body too large",
        }.get(status, err.name.lower() if err.name else "error")
        code = _HTTP_CODES.get(status, f"http_{status}")
        return error_response(ApiError(status, code, message, details, headers))

    @app.errorhandler(Exception)  # ApiError, a full or unreachable store, anything unexpected
    async def _other(err: Exception) -> Response:
        return error_response(as_api_error(err))


# How OpenAPI operations point at the error body schema.
ERROR_SCHEMA_REF = {"$ref": "#/components/schemas/Error"}
