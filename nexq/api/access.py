"""Who may call the API, and the security headers every response gets.

One set of rules for both ways a request is served: the Quart app
(:mod:`nexq.api.app`, as a before/after-request hook) and the plain ASGI
enqueue routes in front of it (:mod:`nexq.api.fast`).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

from .errors import ApiError

HTML_CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Header = Callable[[str], "str | None"]  # a request header by (case-insensitive) name


def needs_token(path: str) -> bool:
    """Whether ``path`` is behind the bearer token (when one is set)."""
    return path.startswith("/api/") or path == "/api" or path == "/metrics"


def check_access(token: str | None, method: str, path: str, header: Header, host: Callable[[], str]) -> None:
    """Raise ApiError 401 without the bearer ``token`` where one is needed,
    403 for a state-changing request a browser sent from another site.

    ``header(name)`` gives a request header (lower-case name), ``host()``
    the request's host (called only when an Origin must be compared).
    """
    if token and needs_token(path):
        given = header("authorization") or ""
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token",
                           headers={"WWW-Authenticate": 'Bearer realm="nexq"'})
    if method in UNSAFE_METHODS:
        _refuse_cross_site(header, host)


def _refuse_cross_site(header: Header, host: Callable[[], str]) -> None:
    """403 for a state-changing request a browser sent from another site.

    Browsers send Sec-Fetch-Site (older ones: Origin) on cross-site POSTs,
    even simple ones that need no preflight; scripts and CLIs send neither.
    This keeps a page the operator happens to visit from pausing queues on
    an API left without a token.
    """
    fetch_site = header("sec-fetch-site")
    if fetch_site is not None:
        # Set by the browser itself, so it also holds behind a proxy that
        # rewrites Host (where the Origin comparison below would misfire).
        if fetch_site.lower() not in ("same-origin", "none"):
            raise ApiError(403, "forbidden", "cross-site request refused", {"sec_fetch_site": fetch_site})
        return
    origin = header("origin")
    if origin is None:
        return
    if origin == "null" or urlsplit(origin).netloc.lower() != host().lower():
        raise ApiError(403, "forbidden", "cross-site request refused", {"origin": origin})


def security_headers(mimetype: str, path: str) -> dict[str, str]:
    """The headers a response of ``mimetype`` to ``path`` gets (its own
    Cache-Control, if it has one, wins over the one given here)."""
    headers = {"X-Content-Type-Options": "nosniff"}
    if mimetype == "text/html":
        headers.update({"Content-Security-Policy": HTML_CSP, "X-Frame-Options": "DENY",
                        "Referrer-Policy": "no-referrer"})
    elif path.startswith("/api/"):
        headers["Cache-Control"] = "no-store"
    return headers
