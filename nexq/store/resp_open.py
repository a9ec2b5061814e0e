"""Open one RESP stream under trio: connect (TCP, TLS or unix) and AUTH, within a timeout."""

from __future__ import annotations

import os
import ssl
from typing import Any

import hiredis
import trio

from ..errors import InvalidStoreURL, StoreError, StoreUnavailable
from .resp_commands import ReplyError, store_error
from .resp_conn import TRANSPORT_ERRORS, new_parser
from .url import StoreURL

_RECEIVE_SIZE = 65536


def tls_context(url: StoreURL) -> ssl.SSLContext | None:
    """The TLS settings for a rediss:// URL (None for plain connections).

    Raises InvalidStoreURL if the URL's CA file cannot be loaded.
    """
    if not url.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=url.tls_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidStoreURL(f"cannot load ssl_ca_certs={url.tls_ca_file!r}: {exc}") from None
    if not url.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def open_stream(
    url: StoreURL, timeout: float, ssl_context: ssl.SSLContext | None
) -> tuple[trio.abc.Stream, hiredis.Reader]:
    """Connect to ``url`` and AUTH if it has a password, within ``timeout`` s.

    Returns the stream and the parser that read the AUTH reply. Raises
    StoreUnavailable if the server cannot be reached in time (refused, no
    such socket, TLS failure, timeout) and StoreAuthError if it rejects the
    password.
    """
    parser = new_parser()
    stream: trio.abc.Stream | None = None
    try:
        with trio.fail_after(timeout):
            if url.scheme == "unix":
                stream = await trio.open_unix_socket(url.path)
            else:
                stream = await trio.open_tcp_stream(url.host, url.port)
                if ssl_context is not None:
                    stream = trio.SSLStream(stream, ssl_context, server_hostname=url.host)
                    await stream.do_handshake()
            if url.password is not None:
                # Pogocache accepts only the one-argument form of AUTH.
                auth: tuple[Any, ...] = ("AUTH", url.password)
                await stream.send_all(hiredis.pack_command(auth))
                reply: Any = False
                while reply is False:
                    data = await stream.receive_some(_RECEIVE_SIZE)
                    if not data:
                        raise StoreUnavailable(f"{url} closed the connection during AUTH")
                    parser.feed(bytes(data))
                    reply = parser.gets()
                if isinstance(reply, ReplyError):
                    raise store_error(reply, auth=True)
        return stream, parser
    except BaseException as exc:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        # StoreUnavailable and StoreAuthError are OSErrors too: keep them as they are.
        if isinstance(exc, StoreError):
            raise
        if isinstance(exc, trio.TooSlowError):
            raise StoreUnavailable(f"connecting to {url} timed out after {timeout:g} s") from None
        if isinstance(exc, TRANSPORT_ERRORS):
            raise StoreUnavailable(f"cannot connect to {url}: {_reason(exc)}") from exc
        raise


def _reason(exc: BaseException) -> str:
    """Why a connect failed, in words: trio's "all attempts failed" OSError
    carries the per-address errors as an ExceptionGroup cause, whose str()
    would end in "(1 sub-exception)"; name the errors themselves instead."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        reasons = [os.strerror(e.errno) if e.errno else str(e) for e in cause.exceptions
                   if isinstance(e, OSError)]
        if reasons:
            return ", ".join(dict.fromkeys(reasons))
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(cause if cause is not None else exc)
