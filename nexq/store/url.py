"""Store URLs: which store, where, and with which credentials.

| URL | store |
|---|---|
| ``memory://`` | embedded, in memory only |
| ``memory:///path/to/dir`` | embedded, durable in that data directory |
| ``pogocache://[:password@]host[:port]`` | Pogocache, default port 9401 |
| ``redis://[:password@]host[:port]`` | RESP server, default port 6379 |
| ``rediss://...`` | the same over TLS |
| ``unix:///path/to.sock[?password=...]`` | RESP server on a unix socket |
"""

from __future__ import annotations

import urllib.parse

import attrs

from ..errors import InvalidStoreURL

DEFAULT_PORTS = {"pogocache": 9401, "redis": 6379, "rediss": 6379}
SCHEMES = ("memory", "pogocache", "redis", "rediss", "unix")


@attrs.frozen
class StoreURL:
    """A parsed store URL. ``password`` is never shown by ``str()``/``repr``."""

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""
    password: str | None = attrs.field(default=None, repr=False)
    # TLS options for rediss:// (query: ssl_cert_reqs=none, ssl_ca_certs=PATH)
    tls_verify: bool = True
    tls_ca_file: str | None = None

    @property
    def tls(self) -> bool:
        return self.scheme == "rediss"

    @property
    def embedded(self) -> bool:
        return self.scheme == "memory"

    @property
    def node_name(self) -> str:
        """``host:port`` (a socket's path): what names this store as a
        cluster node. Scheme and credentials are left out so that changing
        them does not move queues between nodes."""
        return self.path if self.scheme in ("unix", "memory") else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        """The URL with any password masked, safe for logs."""
        if self.scheme == "memory":
            return f"memory://{self.path}"
        if self.scheme == "unix":
            return f"unix://{self.path}"
        auth = ":***@" if self.password else ""
        return f"{self.scheme}://{auth}{self.host}:{self.port}"


def parse_store_url(url: str) -> StoreURL:
    """Parse ``url``; raises InvalidStoreURL naming what is wrong."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidStoreURL(
            f"store URL {url!r} has no scheme; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidStoreURL(
            f"store URL scheme {scheme!r} is not supported; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    query = dict(urllib.parse.parse_qsl(parts.query))
    if scheme == "memory":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        return StoreURL(scheme="memory", path=path)
    password = urllib.parse.unquote(parts.password) if parts.password else None
    if parts.username and parts.password is None:
        # redis://secret@host is a common slip for redis://:secret@host
        password = urllib.parse.unquote(parts.username)
    if "password" in query:
        password = query["password"]
    if scheme == "unix":
        if not parts.path:
            raise InvalidStoreURL(f"unix store URL {url!r} needs a socket path")
        return StoreURL(scheme="unix", path=parts.path, password=password)
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise InvalidStoreURL(f"store URL {url!r} has a bad port: {exc}") from None
    host = parts.hostname or "127.0.0.1"
    verify = query.get("ssl_cert_reqs", "required").lower() not in ("none", "0", "false")
    return StoreURL(
        scheme=scheme,
        host=host,
        port=port,
        password=password,
        tls_verify=verify,
        tls_ca_file=query.get("ssl_ca_certs"),
    )


def split_store_urls(text: str) -> list[StoreURL]:
    """``"redis://a:6379,redis://b:6379"`` -> the parsed nodes, in order.

    Raises InvalidStoreURL for a bad part, an empty part, the same node
    twice, or an embedded store among several (it lives in one process).
    """
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise InvalidStoreURL(f"store list {text!r} has an empty entry; separate URLs with single commas")
    nodes = [parse_store_url(p) for p in parts]
    if len(nodes) > 1:
        if any(n.embedded for n in nodes):
            raise InvalidStoreURL("memory:// cannot be one of several store nodes: the embedded "
                                  "store lives inside one process; list Pogocache/RESP servers")
        names = [n.node_name for n in nodes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidStoreURL(f"store node {twice[0]} is listed more than once")
    return nodes
