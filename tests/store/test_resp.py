"""RESP-specific behaviour of RespStore: allowlist, pipelining, failures.

Tests on the shared server (``resp_url``, a real Pogocache when
NEXQ_TEST_STORE_URL is set) isolate by ``prefix`` and never flush. Tests that
kill, restart or configure a server start their own redis-server; tests that
need a server misbehaving on purpose use a fake one built here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import hiredis
import pytest
import trio
import trio.testing

from nexq.errors import (
    CommandNotAllowed,
    InvalidStoreURL,
    StoreAuthError,
    StoreResponseError,
    StoreUnavailable,
)
from nexq.store import Batch, open_store, parse_store_url, resp_commands
from nexq.store.resp import RespStore
from tests.servers import free_port, redis_server

Handler = Callable[[trio.SocketStream, list[list[bytes]]], Awaitable[None]]


@asynccontextmanager
async def fake_server(handler: Handler) -> AsyncIterator[tuple[int, list[list[bytes]]]]:
    """A loopback TCP server running ``handler(stream, commands)`` per client.

    ``commands`` is shared by all clients; handlers append what they parse.
    Yields (port, commands).
    """
    commands: list[list[bytes]] = []

    async def serve(stream: trio.SocketStream) -> None:
        try:
            await handler(stream, commands)
        except trio.BrokenResourceError:
            pass

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        yield listeners[0].socket.getsockname()[1], commands
        nursery.cancel_scope.cancel()


async def read_commands(
    stream: trio.SocketStream, reader: hiredis.Reader
) -> list[list[bytes]] | None:
    """The next complete commands from ``stream``; None at EOF."""
    while True:
        data = await stream.receive_some(65536)
        if not data:
            return None
        reader.feed(data)
        got = []
        while (cmd := reader.gets()) is not False:
            got.append(cmd)
        if got:
            return got


async def answer_ok(stream: trio.SocketStream, commands: list[list[bytes]]) -> None:
    """Record each command and answer PING with PONG, anything else with OK."""
    reader = hiredis.Reader()
    while (got := await read_commands(stream, reader)) is not None:
        commands.extend(got)
        await stream.send_all(
            b"".join(b"+PONG\r\n" if c[0] == b"PING" else b"+OK\r\n" for c in got)
        )


async def never_answer(stream: trio.SocketStream, commands: list[list[bytes]]) -> None:
    """Accept, record, and never answer."""
    reader = hiredis.Reader()
    while (got := await read_commands(stream, reader)) is not None:
        commands.extend(got)


# -- the allowlist ------------------------------------------------------------


@pytest.mark.parametrize(
    "cmd",
    [
        ("LPUSH", "k", "v"),
        ("HELLO", "3"),
        ("EVAL", "return 1", "0"),
        ("hset", "h", "f", "v"),
        (b"CONFIG", b"GET", b"*"),
        ("INFO",),
        ("MULTI",),
        ("GETDEL", "k"),
        ("MONITOR",),
        ("QUIT",),
        ("SELECT", "1"),
        ("AUTH", "x"),
    ],
)
async def test_commands_outside_pogocache_are_refused_before_sending(cmd: tuple[Any, ...]) -> None:
    async with fake_server(answer_ok) as (port, commands):
        async with open_store(f"redis://127.0.0.1:{port}") as store:
            assert await store.execute_command("PING") == b"PONG"  # a live connection
            with pytest.raises(CommandNotAllowed):
                await store.execute_command(*cmd)
            assert await store.execute_command("ping") == b"PONG"
    assert commands == [[b"PING"], [b"PING"]]


async def test_allowlist_is_pogocaches_command_set() -> None:
    allowed = resp_commands.ALLOWED_COMMANDS
    for name in (
        "SET",
        "GET",
        "DEL",
        "MGET",
        "INCRBY",
        "APPEND",
        "EXPIRE",
        "PTTL",
        "SAVE",
        "STATS",
        "VERSION",
        "DBSIZE",
        "SCAN",
        "KEYS",
        "PREPEND",
        "UINCRBY",
    ):
        assert name in allowed
    for name in (
        "HELLO",
        "CLIENT",
        "INFO",
        "MULTI",
        "EXEC",
        "WATCH",
        "EVAL",
        "EVALSHA",
        "LPUSH",
        "BLPOP",
        "LMOVE",
        "SADD",
        "ZADD",
        "HSET",
        "XADD",
        "SUBSCRIBE",
        "PUBLISH",
        "GETDEL",
        "STRLEN",
        "CONFIG",
        "OBJECT",
        "PEXPIRE",
        "PERSIST",
    ):
        assert name not in allowed


async def test_auth_sends_the_one_argument_form() -> None:
    async with fake_server(answer_ok) as (port, commands):
        async with open_store(f"redis://:s3cret@127.0.0.1:{port}") as store:
            await store.ping()
    assert commands == [[b"AUTH", b"s3cret"], [b"PING"]]


# -- pipelining ---------------------------------------------------------------


async def test_1000_concurrent_tasks_each_get_their_own_reply(
    resp_url: str, prefix: str, checker: Any
) -> None:
    results: dict[int, Any] = {}

    async def worker(i: int) -> None:
        assert await store.set(f"{prefix}{i}", f"value-{i}") is True
        results[i] = await store.get(f"{prefix}{i}")

    async with open_store(resp_url) as store:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for i in range(1000):
                    nursery.start_soon(worker, i)
        assert results == {i: f"value-{i}".encode() for i in range(1000)}
        assert checker.get(f"{prefix}999") == b"value-999"
        assert await store.delete(*[f"{prefix}{i}" for i in range(1000)]) == 1000


async def test_batch_of_10000_ops_is_one_round_trip() -> None:
    # The fake answers nothing until it holds all 10,000 commands: a client
    # that waited for any reply before sending the rest would time out.
    async def answer_all_at_once(stream: trio.SocketStream, commands: list[list[bytes]]) -> None:
        reader = hiredis.Reader()
        while len(commands) < 10_000:
            got = await read_commands(stream, reader)
            assert got is not None
            commands.extend(got)
        await stream.send_all(b"+OK\r\n" * len(commands))
        await trio.sleep_forever()

    async with fake_server(answer_all_at_once) as (port, commands):
        async with open_store(f"redis://127.0.0.1:{port}", command_timeout=5) as store:
            batch = Batch()
            for i in range(10_000):
                batch.set(f"k{i}", i)
            with trio.fail_after(10):
                assert await store.execute(batch) == [True] * 10_000
    assert commands[0] == [b"SET", b"k0", b"0"] and commands[-1] == [b"SET", b"k9999", b"9999"]


async def test_batch_of_10000_ops_answers_in_order(resp_url: str, prefix: str) -> None:
    async with open_store(resp_url) as store:
        batch = Batch()
        for i in range(5_000):
            batch.set(f"{prefix}{i}", i).incrby(f"{prefix}{i}", 1)
        answers = await store.execute(batch)
        assert answers == [x for i in range(5_000) for x in (True, i + 1)]
        assert await store.mget([f"{prefix}{i}" for i in range(5_000)]) == [
            str(i + 1).encode() for i in range(5_000)
        ]
        assert await store.delete(*[f"{prefix}{i}" for i in range(5_000)]) == 5_000


async def test_batch_answers_have_the_documented_types(resp_url: str, prefix: str) -> None:
    k = f"{prefix}k"
    async with open_store(resp_url) as store:
        batch = (
            Batch()
            .set(k, 5)
            .set(k, "x", nx=True)
            .set(k, 6, xx=True, get=True)
            .incrby(k, 2)
            .incr(k)
            .append(k, "0")
            .get(k)
            .mget([k, f"{prefix}missing"])
            .mget([])
            .exists(k, f"{prefix}missing")
            .exists()
            .expire(k, 100)
            .expire(f"{prefix}missing", 100)
            .pttl(f"{prefix}missing")
            .delete(k, f"{prefix}missing")
            .delete()
        )
        answers = await store.execute(batch)
        assert answers[:6] == [True, False, b"5", 8, 9, 2]
        assert answers[6:11] == [b"90", [b"90", None], [], 1, 0]
        assert answers[11:] == [True, False, -2, 1, 0]


async def test_batch_error_is_raised_after_every_reply_is_read(
    resp_url: str, prefix: str, checker: Any
) -> None:
    async with open_store(resp_url, pool_size=1) as store:
        batch = Batch().set(f"{prefix}a", "text").incr(f"{prefix}a").set(f"{prefix}b", "sent")
        with pytest.raises(StoreResponseError):
            await store.execute(batch)
        assert checker.get(f"{prefix}b") == b"sent"  # the op after the failure still ran
        assert await store.get(f"{prefix}a") == b"text"  # and the stream is still in step
        with pytest.raises(StoreResponseError):
            await store.incr(f"{prefix}a")
        assert await store.get(f"{prefix}b") == b"sent"
        await store.delete(f"{prefix}a", f"{prefix}b")


async def test_cancelled_callers_do_not_desync_replies() -> None:
    # The fake holds every reply until the gate opens, so the doomed callers
    # are certainly parked when cancelled; each reply names its own key.
    gate = trio.Event()

    async def echo_key_after_gate(stream: trio.SocketStream, commands: list[list[bytes]]) -> None:
        reader = hiredis.Reader()
        while (got := await read_commands(stream, reader)) is not None:
            commands.extend(got)
            await gate.wait()
            await stream.send_all(b"".join(b"$%d\r\n%s\r\n" % (len(c[1]), c[1]) for c in got))

    scopes: list[trio.CancelScope] = []
    got: dict[int, Any] = {}

    async def doomed(i: int) -> None:
        with trio.CancelScope() as scope:
            scopes.append(scope)
            if i % 2:
                await store.get(f"doomed{i}")
            else:
                await store.execute(Batch().get(f"doomed{i}").get(f"doomed{i}b"))
            pytest.fail("a reply reached a cancelled caller")

    async def honest(i: int) -> None:
        if i % 2:
            got[i] = await store.get(f"honest{i}")
        else:
            got[i] = await store.execute(Batch().get(f"honest{i}").get(f"honest{i}b"))

    async with fake_server(echo_key_after_gate) as (port, commands):
        async with open_store(f"redis://127.0.0.1:{port}", pool_size=1) as store:
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    for i in range(100):
                        nursery.start_soon(doomed, i)
                        nursery.start_soon(honest, i)
                    await trio.testing.wait_all_tasks_blocked()
                    for scope in scopes:
                        scope.cancel()
                    gate.set()
                assert await store.get("last") == b"last"
    assert got == {
        i: f"honest{i}".encode() if i % 2 else [f"honest{i}".encode(), f"honest{i}b".encode()]
        for i in range(100)
    }
    assert len(commands) == 150 + 150 + 1  # the doomed commands were still sent


async def test_random_cancellations_on_a_real_server(resp_url: str, prefix: str) -> None:
    async with open_store(resp_url, pool_size=2) as store:
        await store.execute(Batch().set(f"{prefix}a", "A").set(f"{prefix}b", "B"))
        mismatches: list[Any] = []

        async def caller(i: int) -> None:
            key, want = (f"{prefix}a", b"A") if i % 2 else (f"{prefix}b", b"B")
            for n in range(50):
                with trio.move_on_after(0.00005 * ((i + n) % 7)):
                    value = await store.get(key)
                    if value != want:
                        mismatches.append((key, value))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for i in range(100):
                    nursery.start_soon(caller, i)
        assert mismatches == []
        assert await store.mget([f"{prefix}a", f"{prefix}b"]) == [b"A", b"B"]
        await store.delete(f"{prefix}a", f"{prefix}b")


async def test_mget_is_chunked(resp_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resp_commands, "MGET_CHUNK", 3)
    keys = [f"{prefix}{i}" for i in range(10)]
    async with open_store(resp_url) as store:
        await store.execute(Batch().set(keys[1], "1").set(keys[7], "7"))
        expected = [b"1" if i == 1 else b"7" if i == 7 else None for i in range(10)]
        assert await store.mget(keys) == expected
        assert await store.execute(Batch().mget(keys).get(keys[7])) == [expected, b"7"]
        await store.delete(*keys)


async def test_str_and_bytes_keys_are_the_same_key(
    resp_url: str, prefix: str, checker: Any
) -> None:
    async with open_store(resp_url) as store:
        await store.set(f"{prefix}clé", b"\x00\xff")
        assert await store.get(f"{prefix}clé".encode()) == b"\x00\xff"
        assert checker.get(f"{prefix}clé") == b"\x00\xff"
        assert await store.delete(f"{prefix}clé".encode()) == 1


async def test_kind_and_info(resp_url: str) -> None:
    url = parse_store_url(resp_url)
    async with open_store(url) as store:
        assert isinstance(store, RespStore)
        info = await store.info()
        assert info["kind"] == store.kind
        assert int(info["keys"]) >= 0
        assert await store.ping() > 0
    async with open_store("pogocache://127.0.0.1:1") as store:
        assert store.kind == "pogocache"
    async with open_store("redis://127.0.0.1:1") as store:
        assert store.kind == "redis"


# -- failures -----------------------------------------------------------------


async def test_closed_port_fails_fast_and_backs_off() -> None:
    async with open_store(f"redis://127.0.0.1:{free_port()}") as store:  # opening never raises
        start = trio.current_time()
        with pytest.raises(StoreUnavailable, match="cannot connect"):
            await store.get("k")
        with pytest.raises(StoreUnavailable, match="not reconnecting"):
            await store.get("k")  # inside the backoff window: no connect attempted
        assert trio.current_time() - start < 1.0


async def test_command_timeout_closes_the_connection() -> None:
    async with fake_server(never_answer) as (port, commands):
        async with open_store(f"redis://127.0.0.1:{port}", command_timeout=0.5) as store:
            start = trio.current_time()
            with pytest.raises(StoreUnavailable, match="command timeout"):
                with trio.fail_after(5):
                    await store.get("k")
            assert 0.45 <= trio.current_time() - start < 1.5
            # the next command opens a fresh connection (and times out again)
            with pytest.raises(StoreUnavailable):
                await store.get("k2")
    assert commands == [[b"GET", b"k"], [b"GET", b"k2"]]


async def test_connect_timeout_covers_auth() -> None:
    async with fake_server(never_answer) as (port, _):
        url = f"redis://:pw@127.0.0.1:{port}"
        async with open_store(url, connect_timeout=0.3) as store:
            start = trio.current_time()
            with pytest.raises(StoreUnavailable, match="timed out"):
                await store.ping()
            assert trio.current_time() - start < 1.0


async def test_server_killed_mid_flight_then_recovers(own_redis: Any, prefix: str) -> None:
    errors: list[BaseException] = []
    done = 0

    async def worker(i: int) -> None:
        nonlocal done
        try:
            while True:
                await store.set(f"{prefix}{i}", i)
                assert await store.get(f"{prefix}{i}") == str(i).encode()
                done += 1
        except StoreUnavailable as exc:
            errors.append(exc)

    async with open_store(own_redis.url, connect_timeout=1, command_timeout=5) as store:
        with trio.fail_after(15):
            async with trio.open_nursery() as nursery:
                for i in range(200):
                    nursery.start_soon(worker, i)
                while done < 1000:
                    await trio.sleep(0.01)
                own_redis.stop(kill=True)
        assert len(errors) == 200  # every caller got StoreUnavailable, none hung

        for _ in range(5):  # down: fail fast, never a raw OSError
            start = trio.current_time()
            with pytest.raises(StoreUnavailable):
                await store.get(f"{prefix}0")
            assert trio.current_time() - start < 0.5

        await trio.to_thread.run_sync(own_redis.start)
        with trio.fail_after(10):  # backoff is bounded: back within seconds
            while True:
                try:
                    await store.ping()
                    break
                except StoreUnavailable:
                    await trio.sleep(0.05)
        await store.set(f"{prefix}after", "ok")
        assert await store.get(f"{prefix}after") == b"ok"


async def test_wrong_or_missing_password_is_an_auth_error() -> None:
    with redis_server(password="s3cret") as server:
        async with open_store(f"redis://:wrong@127.0.0.1:{server.port}") as store:
            with pytest.raises(StoreAuthError, match="authentication failed.*WRONGPASS"):
                await store.ping()
            with pytest.raises(StoreAuthError):
                await store.ping()  # in backoff, still an auth error
        async with open_store(f"redis://127.0.0.1:{server.port}") as store:
            with pytest.raises(StoreAuthError, match="NOAUTH"):
                await store.get("k")
        async with open_store(server.url) as store:
            assert await store.ping() > 0


async def test_store_is_closed_after_the_async_with(resp_url: str) -> None:
    with trio.fail_after(5):
        async with open_store(resp_url) as store:
            await store.ping()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.ping()


# -- transports ---------------------------------------------------------------


async def test_unix_socket(prefix: str) -> None:
    with tempfile.TemporaryDirectory(prefix="nexq-") as d:
        path = os.path.join(d, "redis.sock")
        with redis_server("--unixsocket", path, "--unixsocketperm", "700"):
            async with open_store(f"unix://{path}") as store:
                assert await store.set(f"{prefix}u", "via unix") is True
                assert await store.get(f"{prefix}u") == b"via unix"


@pytest.fixture
def tls_server() -> Any:
    """A redis-server with TLS on a second port, and its CA file."""
    trustme = pytest.importorskip("trustme")
    with tempfile.TemporaryDirectory(prefix="nexq-tls-") as d:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        files = {name: os.path.join(d, name) for name in ("ca.pem", "cert.pem", "key.pem")}
        ca.cert_pem.write_to_path(files["ca.pem"])
        cert.private_key_pem.write_to_path(files["key.pem"])
        for i, pem in enumerate(cert.cert_chain_pems):
            pem.write_to_path(files["cert.pem"], append=i > 0)
        port = free_port()
        args = (
            "--tls-port",
            str(port),
            "--tls-cert-file",
            files["cert.pem"],
            "--tls-key-file",
            files["key.pem"],
            "--tls-ca-cert-file",
            files["ca.pem"],
            "--tls-auth-clients",
            "no",
        )
        try:
            server = redis_server(*args)
            server.__enter__()
        except RuntimeError:
            pytest.skip("this redis-server was built without TLS")
        try:
            yield port, files["ca.pem"]
        finally:
            server.__exit__(None, None, None)


async def test_tls(tls_server: Any, prefix: str) -> None:
    port, ca_file = tls_server
    async with open_store(f"rediss://127.0.0.1:{port}?ssl_ca_certs={ca_file}") as store:
        assert await store.set(f"{prefix}t", "over tls") is True
        assert await store.get(f"{prefix}t") == b"over tls"
        async with trio.open_nursery() as nursery:  # pipelining over TLS too
            for i in range(100):
                nursery.start_soon(store.set, f"{prefix}t{i}", i)
        assert await store.mget([f"{prefix}t{i}" for i in range(100)]) == [
            str(i).encode() for i in range(100)
        ]
    async with open_store(f"rediss://127.0.0.1:{port}?ssl_cert_reqs=none") as store:
        assert await store.get(f"{prefix}t") == b"over tls"
    async with open_store(f"rediss://127.0.0.1:{port}") as store:  # CA not trusted
        with pytest.raises(StoreUnavailable, match="(?i)certificate"):
            await store.ping()
    with pytest.raises(InvalidStoreURL, match="ssl_ca_certs"):
        async with open_store(f"rediss://127.0.0.1:{port}?ssl_ca_certs=/nonexistent.pem"):
            pass
