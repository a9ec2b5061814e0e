"""``serve_api``: run the API on Hypercorn inside the caller's nursery."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from ..runtime.runtime import Runtime
from . import idle_timer
from .app import create_app
from .state import api_state

log = logging.getLogger("nexq.api.server")

DEFAULT_GRACE = 5.0  # seconds in-flight requests get to finish at shutdown


class _PortReporter:
    """Stands in for trio's task_status: turns Hypercorn's bind list into a port."""

    def __init__(self, task_status: trio.TaskStatus[int]) -> None:
        self.task_status = task_status

    def started(self, binds: Any = None) -> None:
        # Hypercorn reports ["http://127.0.0.1:54321"]; IPv6 as [::1]:port.
        self.task_status.started(int(str(binds[0]).rsplit(":", 1)[1]))


class _InFlight:
    """ASGI wrapper counting HTTP requests inside the app.

    Hypercorn's graceful shutdown waits for every open connection, idle
    keep-alive ones included (its idle closer does not fire under
    quart-trio), so a browser's pooled socket would hold shutdown for the
    whole grace period. Counting requests lets serve_api stop the moment
    the last in-flight request is done, cutting only idle connections.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self.on_idle: Callable[[], None] | None = None  # set once draining

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
            if self.count == 0 and self.on_idle is not None:
                self.on_idle()


async def serve_api(
    runtime: Runtime,
    host: str,
    port: int,
    *,
    grace: float = DEFAULT_GRACE,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API on ``host:port`` until the enclosing scope is cancelled.

    Reports the bound port through ``task_status`` once listening (so
    ``port=0`` picks a free one: ``port = await nursery.start(serve_api, rt,
    "127.0.0.1", 0)``). Raises OSError if the address cannot be bound.
    When the settings say several API processes serve the deployment
    (``api_processes`` > 1), the socket is opened with SO_REUSEPORT, so
    each of them binds the same port.

    On cancellation it shuts down gracefully: it stops accepting, ends every
    event stream at once, lets in-flight requests finish for up to
    ``grace`` seconds (so an enqueue is never cut between its store writes),
    closes idle connections, then re-raises the cancellation.
    """
    app = create_app(runtime)
    state = api_state(app)
    wrapped = _InFlight(app)
    config = Config()
    if runtime.settings.api_processes > 1:
        config.bind = [f"fd://{_shared_port_socket(host, port)}"]
    else:
        config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = grace
    # Every header costs validation in Hypercorn and h11 on every response;
    # this one only advertises the server software.
    config.include_server_header = False
    config.accesslog = None
    config.errorlog = log
    # Hypercorn's keep-alive idle timer without a lock and a task hand-off
    # per request (same timeouts; nexq.api.idle_timer).
    idle_timer.install()
    stop = trio.Event()

    async def watch(server_scope: trio.CancelScope) -> None:
        # Runs outside the shield: the caller's cancellation lands here and
        # turns into a graceful stop of the shielded server.
        try:
            await trio.sleep_forever()
        finally:
            state.begin_shutdown()
            stop.set()  # Hypercorn stops accepting connections
            server_scope.deadline = trio.current_time() + grace
            wrapped.on_idle = server_scope.cancel
            if wrapped.count == 0:
                server_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            with trio.CancelScope(shield=True) as server_scope:
                nursery.start_soon(watch, server_scope)
                await serve(wrapped, config, shutdown_trigger=stop.wait,
                            task_status=_PortReporter(task_status))
            if wrapped.count:
                log.warning("API stopped with %d request(s) unfinished after %.1f s", wrapped.count, grace)
            nursery.cancel_scope.cancel()  # the server ended by itself: stop the watcher
    except BaseExceptionGroup as group:
        # A failed bind arrives wrapped in three nurseries' groups; callers
        # should be able to ``except OSError`` for "port in use".
        leaves = list(_leaves(group))
        if len(leaves) == 1 and isinstance(leaves[0], OSError):
            raise leaves[0] from None
        raise


def _shared_port_socket(host: str, port: int) -> int:
    """A TCP socket bound to ``host:port`` with SO_REUSEPORT, as its file
    descriptor (Hypercorn takes it over). Every API process of a
    deployment binds its own, so the kernel spreads new connections over
    them; raises OSError if the address cannot be bound."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock.detach()


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc
