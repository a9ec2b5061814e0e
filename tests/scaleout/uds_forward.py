"""Forward a Unix socket to a TCP address: ``python uds_forward.py PATH HOST PORT``.

Run inside a network namespace (``NetBed``'s ``Host.forward``) it lets a
process outside that namespace reach ``HOST:PORT`` through ``PATH``:
path-based Unix sockets are shared by all network namespaces, TCP is not.
Each accepted connection gets its own TCP connection, opened from inside
the namespace; when that connect fails the Unix connection is closed at
once (a client sees a reset or EOF and may retry). Runs until killed.
"""

from __future__ import annotations

import os
import sys

import trio


async def _pump(src: trio.abc.Stream, dst: trio.SocketStream) -> None:
    """Copy ``src`` to ``dst`` until EOF, then half-close ``dst``."""
    try:
        async for chunk in src:
            await dst.send_all(chunk)
        await dst.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the other direction's close ends this one too


async def _serve_one(client: trio.SocketStream, host: str, port: int) -> None:
    async with client:
        try:
            upstream = await trio.open_tcp_stream(host, port)
        except OSError:
            return  # closing the client tells it the target is not there (yet)
        async with upstream, trio.open_nursery() as nursery:
            nursery.start_soon(_pump, client, upstream)
            nursery.start_soon(_pump, upstream, client)


async def main(path: str, host: str, port: int) -> None:
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    tmp = f"{path}.tmp"  # bound under another name, then renamed: PATH exists only once listening
    await sock.bind(tmp)
    sock.listen(128)
    os.rename(tmp, path)

    async def handle(client: trio.SocketStream) -> None:
        await _serve_one(client, host, port)

    await trio.serve_listeners(handle, [trio.SocketListener(sock)])


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]))
