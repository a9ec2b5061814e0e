"""``POST /api/tasks`` validates its one request inside the broker's enqueue
(nexq.api.routes_tasks.enqueue_one): a request the broker refuses still
names ``body`` (as the batch route names ``tasks[i]``), a middleware's
refusal names ``task``, and nothing is stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from nexq import Nexq
from nexq.api import create_app
from nexq.config import Settings
from nexq.hooks import Middleware
from nexq.queue import NodeBroker
from nexq.runtime.runtime import Runtime
from nexq.store import Store
from nexq.task import TaskSpec

from .conftest import error_of


class RefuseSecret(Middleware):
    def before_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        if any(s.payload == "secret" for s in specs):
            raise ValueError("payload: secrets are not enqueued here")


@pytest.mark.parametrize("body, field, message", [
    ({"type": "t", "schedule_in": 10, "expires_in": 5}, "body",
     "body: the task would expire before it could start (expires_at <= run time)"),
    ({"type": "t", "webhook": "http://127.0.0.1/hook"}, "body", None),
    ({"type": "t", "payload": "secret"}, "task", "task: payload: secrets are not enqueued here"),
])
async def test_a_refused_request_names_its_field_and_stores_nothing(
        store: Store, prefix: str, body: dict[str, Any], field: str, message: str | None) -> None:
    rt = Runtime.build(Settings(namespace=prefix.rstrip(":")), store, app=Nexq(middleware=[RefuseSecret()]))
    client = create_app(rt).test_client()
    resp = await client.post("/api/tasks", json=body)
    assert resp.status_code == 400
    err = error_of(await resp.get_json())
    assert err["code"] == "invalid_request" and err["details"]["field"] == field
    assert err["message"].startswith(f"{field}: ")
    if message is not None:
        assert err["message"] == message
    assert (await rt.inspector.list(limit=10)).tasks == []
