"""Store URLs: which store, where, and with which credentials.

| URL | store |
|---|---|
| ``memory://`` | embedded, in memory only |
| ``memory:///path/to/dir`` | embedded, durable in that data directory |
| ``pogocache://[:password@]host[:port]`` | Pogocache, default port 9401 |
| ``redis://[:password@]host[:port]`` | RESP server, default port 6379 |
| ``rediss://...`` | the same over TLS |
| ``unix:///path/to.sock[?password=...]`` | RESP server on a unix socket |
| ``redis+sentinel://[:password@]s1[:port],s2[:port]/name`` | the primary that Sentinel names ``name`` (sentinel port 26379; ``?sentinel_password=`` if the sentinels need one) |
| ``rediss+sentinel://...`` | the same over TLS (sentinels and primary) |
| ``redis+cluster://[:password@]h1[:port],h2[:port][?partitions=12]`` | a Redis/Valkey Cluster found from those seed nodes (port 6379) |
| ``rediss+cluster://...`` | the same over TLS |
"""

from __future__ import annotations

import urllib.parse

import attrs

from ..errors import InvalidStoreURL

DEFAULT_PORTS = {"pogocache": 9401, "redis": 6379, "rediss": 6379,
                 "redis+sentinel": 26379, "rediss+sentinel": 26379,
                 "redis+cluster": 6379, "rediss+cluster": 6379}
SCHEMES = ("memory", "pogocache", "redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel",
           "redis+cluster", "rediss+cluster")
#: schemes whose URL lists several hosts (``a:1,b:2``): one URL, not a node list
MULTI_HOST = ("redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")
#: a cluster URL's default number of partitions (nexq.store.cluster_partition)
PARTITIONS = 12


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
    # redis+sentinel://: the sentinels (host, port), the monitored primary's
    # name (``path`` holds it too) and the sentinels' own password
    hosts: tuple[tuple[str, int], ...] = ()
    sentinel_password: str | None = attrs.field(default=None, repr=False)
    # redis+cluster://: the seed nodes are ``hosts``; the queue partitions
    partitions: int = 0

    @property
    def tls(self) -> bool:
        return self.scheme.startswith("rediss")

    @property
    def sentinel(self) -> bool:
        """Whether the server is whichever primary Sentinel names (``path``)."""
        return self.scheme.endswith("+sentinel")

    @property
    def cluster(self) -> bool:
        """Whether the store is a Redis Cluster found from the seeds ``hosts``."""
        return self.scheme.endswith("+cluster")

    @property
    def embedded(self) -> bool:
        return self.scheme == "memory"

    @property
    def node_name(self) -> str:
        """``host:port`` (a socket's path): what names this store as a
        cluster node. Scheme and credentials are left out so that changing
        them does not move queues between nodes."""
        if self.sentinel:
            return f"sentinel:{self.path}"
        if self.cluster:
            return f"cluster:{self.host}:{self.port}"
        return self.path if self.scheme in ("unix", "memory") else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        """The URL with any password masked, safe for logs."""
        if self.scheme == "memory":
            return f"memory://{self.path}"
        if self.scheme == "unix":
            return f"unix://{self.path}"
        auth = ":***@" if self.password else ""
        if self.sentinel or self.cluster:
            hosts = ",".join(f"{h}:{p}" for h, p in self.hosts)
            if self.cluster:
                extra = "" if self.partitions == PARTITIONS else f"?partitions={self.partitions}"
                return f"{self.scheme}://{auth}{hosts}{extra}"
            return f"{self.scheme}://{auth}{hosts}/{self.path}"
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
    if scheme in MULTI_HOST:
        return _parse_sentinel(url, scheme, parts, query)
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


def _parse_sentinel(url: str, scheme: str, parts: urllib.parse.SplitResult,
                    query: dict[str, str]) -> StoreURL:
    """``redis+sentinel://[:password@]s1[:port],s2[:port]/name``; raises
    InvalidStoreURL naming what is wrong."""
    auth, _, hostlist = parts.netloc.rpartition("@")
    user, colon, secret = auth.partition(":")
    # redis+sentinel://secret@... is a common slip for :secret@ (as for redis://)
    password = urllib.parse.unquote(secret if colon else user) if auth else None
    password = query.get("password", password)
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        if not host or (port and not port.isdigit()) or (port and not 0 < int(port) < 65536):
            raise InvalidStoreURL(f"store URL {url!r}: bad address {item!r}; "
                                  f"use host[:port] (default port {DEFAULT_PORTS[scheme]}), comma-separated")
        hosts.append((host, int(port) if port else DEFAULT_PORTS[scheme]))
    if len(set(hosts)) != len(hosts):
        raise InvalidStoreURL(f"store URL {url!r} lists a sentinel more than once")
    name = parts.path.strip("/")
    verify = query.get("ssl_cert_reqs", "required").lower() not in ("none", "0", "false")
    if scheme.endswith("+cluster"):
        count = query.get("partitions", str(PARTITIONS))
        if name or not count.isdigit() or not 1 <= int(count) <= 1024:
            raise InvalidStoreURL(f"store URL {url!r}: a cluster URL is {scheme}://h1:6379,h2:6379"
                                  "[?partitions=N] (N from 1 to 1024, no path)")
        return StoreURL(scheme=scheme, host=hosts[0][0], port=hosts[0][1], password=password,
                        tls_verify=verify, tls_ca_file=query.get("ssl_ca_certs"), hosts=tuple(hosts),
                        partitions=int(count))
    if not name or "/" in name:
        raise InvalidStoreURL(f"store URL {url!r} needs the monitored primary's name as its path: "
                              f"{scheme}://s1:26379,s2:26379/mymaster")
    return StoreURL(scheme=scheme, host=hosts[0][0], port=hosts[0][1], path=name, password=password,
                    tls_verify=verify, tls_ca_file=query.get("ssl_ca_certs"), hosts=tuple(hosts),
                    sentinel_password=query.get("sentinel_password"))


def _rejoin(parts: list[str]) -> list[str]:
    """Comma-split URLs with a multi-host URL's hosts put back together:
    ``redis+sentinel://a:1`` + ``b:2/m`` -> ``redis+sentinel://a:1,b:2/m``."""
    out: list[str] = []
    for part in parts:
        if out and "://" not in part and out[-1].split("://", 1)[0].lower() in MULTI_HOST:
            out[-1] += "," + part
        else:
            out.append(part)
    return out


def split_store_urls(text: str) -> list[StoreURL]:
    """``"redis://a:6379,redis://b:6379"`` -> the parsed nodes, in order.

    Raises InvalidStoreURL for a bad part, an empty part, the same node
    twice, or an embedded store among several (it lives in one process).
    """
    parts = [p.strip() for p in text.split(",")]
    if any(not p for p in parts):
        raise InvalidStoreURL(f"store list {text!r} has an empty entry; separate URLs with single commas")
    nodes = [parse_store_url(p) for p in _rejoin(parts)]
    if len(nodes) > 1:
        if any(n.embedded for n in nodes):
            raise InvalidStoreURL("memory:// cannot be one of several store nodes: the embedded "
                                  "store lives inside one process; list Pogocache/RESP servers")
        names = [n.node_name for n in nodes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidStoreURL(f"store node {twice[0]} is listed more than once")
    return nodes
