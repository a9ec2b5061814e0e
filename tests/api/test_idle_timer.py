"""nexq.api.idle_timer: Hypercorn's keep-alive idle timer, cheaper, with
the same contract: one run of the action at a time, restart cancels the
previous run, stop cancels it (even before it first ran), and an idle
keep-alive connection of a real Hypercorn is still closed after
keep_alive_timeout while a busy one is kept."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio import serve, tcp_server

from nexq.api.idle_timer import REPLACED, IdleTask, install


class Group:
    """What IdleTask uses of Hypercorn's TaskGroup: its nursery."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery


async def test_restart_cancels_the_running_action_and_stop_cancels_the_new_one() -> None:
    log: list[str] = []

    def action(name: str) -> Any:
        async def run() -> None:
            log.append(f"{name} started")
            try:
                await trio.sleep_forever()
            finally:
                log.append(f"{name} ended")
        return run

    async with trio.open_nursery() as nursery:
        task = IdleTask()
        await task.restart(Group(nursery), action("a"))
        await trio.testing.wait_all_tasks_blocked()
        await task.restart(Group(nursery), action("b"))
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(log) == ["a ended", "a started", "b started"]  # in the order trio ran them
        await task.stop()
        await trio.testing.wait_all_tasks_blocked()
        assert log[-1] == "b ended"
        # Stopped before it first runs: it ends at its first checkpoint.
        await task.restart(Group(nursery), action("c"))
        await task.stop()
    assert log[-2:] == ["c started", "c ended"]


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_hypercorn_still_closes_idle_keep_alive_connections_only() -> None:
    assert install() and getattr(tcp_server, REPLACED) is IdleTask
    assert install()  # again: nothing changes
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.keep_alive_timeout = 0.5
    config.accesslog = config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, config)
        port = int(str(binds[0]).rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        start = trio.current_time()
        # Busy for longer than the timeout: each request stops the timer.
        while trio.current_time() - start < 1.0:
            await trio.sleep(0.1)
            await stream.send_all(request)
            answer = b""
            while not answer.endswith(b"\r\n\r\nok"):
                data = await stream.receive_some(4096)
                assert data, f"closed while busy, after {answer!r}"
                answer += data
        idle = trio.current_time()
        with trio.fail_after(5):
            assert await stream.receive_some(4096) == b""  # closed by the server
        assert 0.45 < trio.current_time() - idle < 2.0
        await stream.aclose()
        nursery.cancel_scope.cancel()
