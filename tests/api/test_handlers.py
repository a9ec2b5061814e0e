"""Route handlers stand alone: one module's table served on a bare app, and
a handler called directly, each with nothing but an ApiState on the app."""

from __future__ import annotations

import orjson
import pytest
from quart_trio import QuartTrio

from nexq.api import ApiState, routes_admin, routes_tasks
from nexq.api.errors import ApiError, install_error_handlers
from nexq.api.routing import install
from nexq.api.state import EXTENSION
from nexq.queue import EnqueueRequest
from nexq.runtime.runtime import Runtime


def bare_app(runtime: Runtime) -> QuartTrio:
    """A QuartTrio app with the runtime's state and error handlers, no routes."""
    app = QuartTrio(__name__)
    app.extensions[EXTENSION] = ApiState(runtime=runtime, static_dir=None)
    install_error_handlers(app)
    return app


async def test_the_admin_table_serves_alone_on_a_bare_app(runtime: Runtime) -> None:
    await runtime.broker.enqueue_many([EnqueueRequest(type="t", queue="mail")])
    app = bare_app(runtime)
    install(app, routes_admin.routes)
    client = app.test_client()
    resp = await client.post("/api/queues/mail/pause")
    assert resp.status_code == 200 and await resp.get_json() == {"name": "mail", "paused": True}
    assert [q["paused"] for q in (await (await client.get("/api/queues")).get_json())["queues"]] == [True]
    # Validation comes with the table: an unknown query parameter is a 400.
    assert (await client.get("/api/dead?nope=1")).status_code == 400
    # Only that table is served: the task routes are not there.
    assert (await client.get("/api/tasks")).status_code == 404


async def test_a_task_handler_runs_alone_in_an_app_context(runtime: Runtime) -> None:
    [done] = await runtime.broker.enqueue_many([EnqueueRequest(type="t", payload={"n": 1})])
    app = bare_app(runtime)
    async with app.app_context():
        resp = await routes_tasks.get_task(id=done.task_id)
        body = orjson.loads(await resp.get_data())
        assert resp.status_code == 200 and body["id"] == done.task_id and body["payload"] == {"n": 1}
        with pytest.raises(ApiError) as missing:
            await routes_tasks.get_task(id="no-such-task")
    assert missing.value.status == 404 and missing.value.code == "not_found"
