"""``create_app(runtime)``: the QuartTrio app of the REST API and dashboard.

Routes live in the ``routes_*``, ``sse`` and ``metrics`` modules, each a
:class:`~nexq.api.routing.Routes` table of module-level handlers; this one
serves them with authentication, security headers, the static dashboard
and the JSON error handlers. State lives on the app (``app.extensions``).
"""

from __future__ import annotations

import hmac
import importlib.resources
from pathlib import Path
from urllib.parse import urlsplit

from quart import Response, request, send_from_directory
from quart_trio import QuartTrio
from werkzeug.security import safe_join

from .. import __version__
from ..runtime.runtime import Runtime
from . import metrics, routes_admin, routes_tasks, sse
from .errors import ApiError, install_error_handlers, json_response
from .routing import install, openapi_document
from .state import EXTENSION, ApiState, current_runtime, current_state

PLACEHOLDER = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Nexq</title></head>
<body><h1>Nexq</h1><p>The dashboard is not installed. The API is at
<a href="/openapi.json">/openapi.json</a>.</p></body></html>
"""
HTML_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROUTES = (routes_tasks.routes, routes_admin.routes, sse.routes, metrics.routes)


def find_static_dir() -> Path | None:
    """The dashboard's files: the installed package data ``nexq.static``
    (the project's ``static/``); None when it is not installed."""
    # static/__init__.py makes nexq.static a regular package. As a namespace
    # package (no __init__.py) a wheel would still find it, but an editable
    # install would not: setuptools' editable finder maps only packages with
    # an __init__.py to another folder (pypa/setuptools#4943). Reading the
    # project folder from the install record (PEP 610 direct_url.json)
    # instead is fragile: run from the checkout, its nexq.egg-info shadows
    # the record.
    try:
        root = importlib.resources.files("nexq.static")
    except ModuleNotFoundError:
        return None
    path = Path(str(root))  # a folder for both installs (imported from a zip: none)
    return path if path.is_dir() else None


def create_app(runtime: Runtime, *, static_dir: Path | None = None) -> QuartTrio:
    """The API app for ``runtime``.

    ``static_dir`` overrides where the dashboard is served from (default:
    :func:`find_static_dir`). The app holds no global state: several apps
    may share a process.
    """
    app = QuartTrio(__name__, static_folder=None)
    # No redirects (werkzeug answers them with an HTML body): "//" is not
    # merged and no rule ends in "/", so a near-miss path is a JSON 404.
    app.url_map.merge_slashes = False
    # The batch route accepts the largest bodies; each route checks its own
    # smaller limit while reading (see routing.read_json).
    app.config["MAX_CONTENT_LENGTH"] = routes_tasks.batch_body_limit(runtime.settings)
    app.config["JSON_SORT_KEYS"] = False
    app.extensions[EXTENSION] = ApiState(runtime=runtime, static_dir=static_dir or find_static_dir())
    install_error_handlers(app)
    app.before_request(_guard)
    app.after_request(_headers)
    install(app, *ROUTES)
    app.add_url_rule("/openapi.json", "openapi", openapi, methods=["GET"])
    app.add_url_rule("/", "index", index, methods=["GET"])
    app.add_url_rule("/static/<path:path>", "static", static, methods=["GET"])
    return app


async def openapi() -> Response:
    """The OpenAPI document of every route in :data:`ROUTES`."""
    secured = bool(current_runtime().settings.api_token)
    return json_response(openapi_document(ROUTES, title="Nexq API", version=__version__, secured=secured))


async def index() -> Response:
    """The dashboard's index.html, or a placeholder page without a dashboard."""
    return await _static(current_state(), "index.html", placeholder=True)


async def static(path: str) -> Response:
    """A file of the dashboard; a JSON 404 for anything else."""
    return await _static(current_state(), path)


def _needs_token(path: str) -> bool:
    return path.startswith("/api/") or path == "/api" or path == "/metrics"


async def _guard() -> None:
    """401 without the bearer token where one is needed; 403 cross-site."""
    token = current_runtime().settings.api_token
    if token and _needs_token(request.path):
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token",
                           headers={"WWW-Authenticate": 'Bearer realm="nexq"'})
    if request.method in UNSAFE_METHODS:
        _refuse_cross_site()


async def _headers(resp: Response) -> Response:
    resp.headers["X-Content-Type-Options"] = "nosniff"
    if resp.mimetype == "text/html":
        resp.headers["Content-Security-Policy"] = HTML_CSP
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
    elif request.path.startswith("/api/"):
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _refuse_cross_site() -> None:
    """403 for a state-changing request a browser sent from another site.

    Browsers send Sec-Fetch-Site (older ones: Origin) on cross-site POSTs,
    even simple ones that need no preflight; scripts and CLIs send neither.
    This keeps a page the operator happens to visit from pausing queues on
    an API left without a token.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        # Set by the browser itself, so it also holds behind a proxy that
        # rewrites Host (where the Origin comparison below would misfire).
        if fetch_site.lower() not in ("same-origin", "none"):
            raise ApiError(403, "forbidden", "cross-site request refused", {"sec_fetch_site": fetch_site})
        return
    origin = request.headers.get("Origin")
    if origin is None:
        return
    if origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower():
        raise ApiError(403, "forbidden", "cross-site request refused", {"origin": origin})


async def _static(state: ApiState, path: str, *, placeholder: bool = False) -> Response:
    # safe_join refuses "..", absolute paths and the like.
    full = safe_join(str(state.static_dir), path) if state.static_dir is not None else None
    if state.static_dir is not None and full is not None and Path(full).is_file():
        resp = await send_from_directory(state.static_dir, path)
        resp.cache_control.no_cache = True  # the dashboard is small; always revalidate
        return resp
    if placeholder:
        return Response(PLACEHOLDER, mimetype="text/html")
    raise ApiError(404, "not_found", f"no static file {path!r}")
