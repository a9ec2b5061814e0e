"""``create_app(runtime)``: the QuartTrio app of the REST API and dashboard.

Routes live in the ``routes_*``, ``sse`` and ``metrics`` modules, each a
:class:`~nexq.api.routing.Routes` table of module-level handlers; this one
serves them with authentication, security headers, the static dashboard
and the JSON error handlers. State lives on the app (``app.extensions``).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from quart import Response, request, send_from_directory
from quart_trio import QuartTrio
from werkzeug.security import safe_join

from .. import __version__
from ..runtime.runtime import Runtime
from . import metrics, routes_admin, routes_tasks, sse
from .access import check_access, security_headers
from .errors import ApiError, install_error_handlers, json_response
from .fast import FastEnqueue
from .routing import install, openapi_document
from .state import EXTENSION, ApiState, current_runtime, current_state

PLACEHOLDER = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Nexq</title></head>
<body><h1>Nexq</h1><p>The dashboard is not installed. The API is at
<a href="/openapi.json">/openapi.json</a>.</p></body></html>
"""
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
    # The enqueue routes skip Quart (Quart's own way to wrap its ASGI
    # handler, so its test client goes through them too).
    app.asgi_app = FastEnqueue(app, app.asgi_app)  # type: ignore[method-assign]
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


async def _guard() -> None:
    """401 without the bearer token where one is needed; 403 cross-site."""
    check_access(current_runtime().settings.api_token, request.method, request.path,
                 request.headers.get, lambda: request.host)


async def _headers(resp: Response) -> Response:
    for name, value in security_headers(resp.mimetype or "", request.path).items():
        if name == "Cache-Control":
            resp.headers.setdefault(name, value)
        else:
            resp.headers[name] = value
    return resp


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
