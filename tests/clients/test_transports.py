"""Both clients over unix sockets, TLS and AUTH, with the store's errors."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

import pytest

from nexq import AsyncClient, Client, StoreAuthError, StoreUnavailable
from nexq.errors import InvalidStoreURL
from nexq.task import Status
from tests.servers import redis_server
from tests.store.test_resp import tls_server  # noqa: F401 - the fixture


def round_trip(url: str, ns: str) -> tuple[Status, Status]:
    """A task enqueued and read back by each client over ``url``."""
    with Client(url, namespace=ns) as client:
        blocking = client.enqueue("t", {"via": url}).status()

    async def main() -> Status:
        async with AsyncClient(url, namespace=ns) as aclient:
            return await (await aclient.enqueue("t", {"via": url})).status()

    return blocking, asyncio.run(main())


def errors(url: str, ns: str) -> tuple[BaseException, BaseException]:
    """What each client raises for an enqueue over ``url``."""
    with Client(url, namespace=ns) as client, pytest.raises(Exception) as blocking:
        client.enqueue("t")

    async def main() -> None:
        async with AsyncClient(url, namespace=ns) as aclient:
            await aclient.enqueue("t")

    with pytest.raises(Exception) as aio:
        asyncio.run(main())
    return blocking.value, aio.value


def test_unix_socket(ns: str) -> None:
    with tempfile.TemporaryDirectory(prefix="nexq-") as d:
        path = os.path.join(d, "redis.sock")
        with redis_server("--unixsocket", path, "--unixsocketperm", "700"):
            assert round_trip(f"unix://{path}", ns) == (Status.PENDING, Status.PENDING)
        for exc in errors(f"unix://{path}", ns):  # the server is gone: no socket file
            assert isinstance(exc, StoreUnavailable) and "cannot connect" in str(exc)


def test_auth(ns: str) -> None:
    with redis_server(password="s3cret") as server:
        assert round_trip(server.url, ns) == (Status.PENDING, Status.PENDING)
        for exc in errors(f"redis://:wrong@127.0.0.1:{server.port}", ns):
            assert isinstance(exc, StoreAuthError) and "WRONGPASS" in str(exc)
        for exc in errors(f"redis://127.0.0.1:{server.port}", ns):
            assert isinstance(exc, StoreAuthError) and "NOAUTH" in str(exc)


def test_tls(tls_server: Any, ns: str) -> None:  # noqa: F811 - the fixture
    port, ca_file = tls_server
    url = f"rediss://127.0.0.1:{port}?ssl_ca_certs={ca_file}"
    assert round_trip(url, ns) == (Status.PENDING, Status.PENDING)
    assert round_trip(f"rediss://127.0.0.1:{port}?ssl_cert_reqs=none", ns) == (Status.PENDING, Status.PENDING)
    for exc in errors(f"rediss://127.0.0.1:{port}", ns):  # its CA is not trusted
        assert isinstance(exc, StoreUnavailable) and "certificate" in str(exc).lower()
    with pytest.raises(InvalidStoreURL, match="ssl_ca_certs"):
        Client(f"rediss://127.0.0.1:{port}?ssl_ca_certs=/nonexistent.pem")
