"""Sentinel: which server is the primary of a ``redis+sentinel://`` URL.

Discovery is planned as data, once for every driver: :func:`plan` is a
generator that yields :class:`Probe` requests ("dial this server, send these
commands, give me the replies") and receives the replies or the StoreError
the exchange raised. It asks each sentinel in turn for the primary's
address (``SENTINEL get-master-addr-by-name``) and checks with ``ROLE`` that
the server named really is a master. The trio store (RespStore), the
blocking client and the asyncio client each perform probes their own way
and drive the plan with :func:`locate` / :func:`locate_sync`.

:class:`Primary` caches the answer until a driver sees a sign of failover
(a lost connection, a ``READONLY`` error reply) and calls :meth:`Primary.lost`;
the next connect asks the sentinels again. The drivers' connect backoff
bounds how often that happens while no primary is reachable, and their
commands meanwhile raise StoreUnavailable.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import attrs
import trio
from hiredis import pack_command

from ..errors import StoreAuthError, StoreError, StoreUnavailable
from .resp_commands import Command, ReplyError
from .resp_conn import TRANSPORT_ERRORS
from .resp_open import open_stream
from .url import StoreURL

_RECEIVE_SIZE = 65536


@attrs.frozen
class Probe:
    """One short exchange: dial ``url`` (with AUTH if it has a password),
    send ``commands``, read their replies, hang up."""

    url: StoreURL
    commands: tuple[Command, ...]


Plan = Generator[Probe, "list[Any] | StoreError", StoreURL]


def _server(url: StoreURL, host: str, port: int, password: str | None) -> StoreURL:
    return StoreURL(scheme="rediss" if url.tls else "redis", host=host, port=port, password=password,
                    tls_verify=url.tls_verify, tls_ca_file=url.tls_ca_file)


def plan(url: StoreURL) -> Plan:
    """Find the primary ``url`` names (see module doc); returns its URL.

    Raises StoreUnavailable naming what each sentinel said when none names
    a reachable master, StoreAuthError if the primary refuses the password.
    """
    name, why = url.path, []
    for host, port in url.hosts:
        where = f"sentinel {host}:{port}"
        got = yield Probe(_server(url, host, port, url.sentinel_password),
                          (("SENTINEL", "get-master-addr-by-name", name),))
        if isinstance(got, StoreError):
            why.append(f"{where}: {got}")
            continue
        addr = got[0]
        if type(addr) is ReplyError or not isinstance(addr, list) or len(addr) != 2:
            why.append(f"{where} does not know a primary named {name!r} ({_text(addr)})")
            continue
        primary = _server(url, _text(addr[0]), int(addr[1]), url.password)
        got = yield Probe(primary, (("ROLE",),))
        if isinstance(got, StoreAuthError):
            raise got
        if isinstance(got, StoreError):
            why.append(f"{where} names {primary.host}:{primary.port}: {got}")
            continue
        role = got[0]
        if not isinstance(role, list) or not role or role[0] != b"master":
            why.append(f"{where} names {primary.host}:{primary.port}, which reports role "
                       f"{_text(role[0] if isinstance(role, list) and role else role)} (a failover is under way)")
            continue
        return primary
    raise StoreUnavailable(f"{url}: no primary named {name!r} found: " + "; ".join(why))


def _next(steps: Plan, got: list[Any] | StoreError | None) -> Probe | StoreURL:
    try:
        return steps.send(got)  # type: ignore[arg-type]  # the first send is None
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def locate_sync(url: StoreURL, probe: Callable[[Probe], list[Any]]) -> StoreURL:
    """Run :func:`plan` with a blocking ``probe``."""
    steps = plan(url)
    got: list[Any] | StoreError | None = None
    while isinstance(step := _next(steps, got), Probe):
        try:
            got = probe(step)
        except StoreError as exc:
            got = exc
    return step


async def locate(url: StoreURL, probe: Callable[[Probe], Awaitable[list[Any]]]) -> StoreURL:
    """Run :func:`plan` with an async ``probe`` (trio's or asyncio's)."""
    steps = plan(url)
    got: list[Any] | StoreError | None = None
    while isinstance(step := _next(steps, got), Probe):
        try:
            got = await probe(step)
        except StoreError as exc:
            got = exc
    return step


class Primary:
    """The primary of a sentinel URL, as last found (see module doc)."""

    def __init__(self, url: StoreURL) -> None:
        self.url = url
        self.known: StoreURL | None = None

    def lost(self) -> None:
        """A sign of failover: ask the sentinels again on the next connect."""
        self.known = None

    def sync(self, probe: Callable[[Probe], list[Any]]) -> StoreURL:
        """The primary, found with blocking ``probe`` if not known. Raises
        as :func:`plan`."""
        if self.known is None:
            self.known = locate_sync(self.url, probe)
        return self.known

    async def get(self, probe: Callable[[Probe], Awaitable[list[Any]]]) -> StoreURL:
        """The primary, found with async ``probe`` if not known."""
        if self.known is None:
            self.known = await locate(self.url, probe)
        return self.known


def demoted(reply: Any) -> bool:
    """Whether ``reply`` is the error a replica gives a write: the server
    was a primary once and is not any more."""
    return type(reply) is ReplyError and str(reply).startswith("READONLY")


def demoted_error(url: StoreURL) -> StoreUnavailable:
    return StoreUnavailable(f"{url}: the server is no longer the primary (READONLY); "
                            "asking the sentinels again")


async def trio_probe(probe: Probe, timeout: float, ssl_context: ssl.SSLContext | None) -> list[Any]:
    """Perform ``probe`` under trio within ``timeout`` s; raises
    StoreUnavailable / StoreAuthError."""
    stream, parser = await open_stream(probe.url, timeout, ssl_context)
    replies: list[Any] = []
    try:
        with trio.fail_after(timeout):
            await stream.send_all(b"".join(pack_command(c) for c in probe.commands))
            while len(replies) < len(probe.commands):
                reply = parser.gets()
                if reply is not False:
                    replies.append(reply)
                    continue
                data = await stream.receive_some(_RECEIVE_SIZE)
                if not data:
                    raise StoreUnavailable(f"{probe.url}: the server closed the connection")
                parser.feed(bytes(data))
    except trio.TooSlowError:
        raise StoreUnavailable(f"{probe.url}: no reply within {timeout:g} s") from None
    except TRANSPORT_ERRORS as exc:
        if isinstance(exc, StoreError):
            raise
        raise StoreUnavailable(f"{probe.url}: connection lost: {exc}") from None
    finally:
        await trio.aclose_forcefully(stream)
    return replies


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
