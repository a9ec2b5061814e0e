"""A fault-injecting TCP proxy for tests: latency, resets and a blackhole.

Runs as a trio task in the test's nursery, between Nexq and its store, on
loopback only:

    proxy = FaultProxy(("127.0.0.1", store_port))
    port = await nursery.start(proxy.serve)
    proxy.latency = 0.005      # added per chunk, each way
    proxy.reset_all()          # RST every open connection
    proxy.blackhole = True     # accept, read and drop everything
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import trio


class FaultProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.latency = 0.0
        self.blackhole = False
        self.connections = 0
        self._pairs: set[tuple[trio.SocketStream, trio.SocketStream]] = set()
        self._scopes: set[trio.CancelScope] = set()

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    def reset_all(self) -> None:
        """Abort every open connection with a TCP RST."""
        for client, server in list(self._pairs):
            for stream in (client, server):
                try:
                    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
        for scope in list(self._scopes):
            scope.cancel()

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                if self.blackhole:
                    await self._swallow(client)
                    return
                server = await trio.open_tcp_stream(*self.upstream)
            except OSError:
                await client.aclose()
                return
            pair = (client, server)
            self._pairs.add(pair)
            try:
                async with client, server, trio.open_nursery() as n:
                    n.start_soon(self._pump, client, server, n.cancel_scope)
                    n.start_soon(self._pump, server, client, n.cancel_scope)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            finally:
                self._pairs.discard(pair)
        self._scopes.discard(scope)
        with trio.CancelScope(shield=True):
            await client.aclose()

    async def _swallow(self, stream: trio.SocketStream) -> None:
        while await stream.receive_some(65536):
            pass

    async def _pump(self, src: trio.SocketStream, dst: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            while data := await src.receive_some(65536):
                while self.blackhole:  # hold the data: the peer sees silence
                    await trio.sleep(0.05)
                if self.latency:
                    await trio.sleep(self.latency)
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        scope.cancel()
