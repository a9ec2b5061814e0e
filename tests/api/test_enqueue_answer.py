"""The answer to an enqueue is the task as stored: a task created to run at
once is answered from what was written (no read back), and that answer is
what reading it gives."""

from __future__ import annotations

from typing import Any

import pytest
from quart.typing import TestClientProtocol as Client

BODIES: list[dict[str, Any]] = [
    {"type": "t"},
    {"type": "email", "payload": {"to": "a@b.c", "n": [1, 2.5, None, True]}, "priority": "high",
     "queue": "mail", "max_retries": 0, "timeout": 1.5},
    {"type": "t", "payload": "text", "priority": 0, "unique_key": "k1"},
    {"type": "t", "payload": 7, "webhook": "https://example.com/hook", "expires_in": 600},
    {"type": "t", "schedule_in": 3600},  # scheduled: read back
    {"type": "t", "run_at": "2000-01-01T00:00:00Z"},  # past: due at once, read back
]


async def stored(client: Client, task_id: str) -> Any:
    resp = await client.get(f"/api/tasks/{task_id}")
    assert resp.status_code == 200
    return await resp.get_json()


@pytest.mark.parametrize("body", BODIES)
async def test_the_answer_is_what_reading_the_task_gives(client: Client, body: dict[str, Any]) -> None:
    resp = await client.post("/api/tasks", json=body)
    assert resp.status_code == 201
    task = await resp.get_json()
    assert task == await stored(client, task["id"])


async def test_batch_answers_are_what_reading_the_tasks_gives(client: Client) -> None:
    resp = await client.post("/api/tasks/batch", json={"tasks": [*BODIES, {"type": "t", "unique_key": "k1"}]})
    assert resp.status_code == 201
    answers = await resp.get_json()
    assert [a.pop("created") for a in answers] == [True] * len(BODIES) + [False]
    for answer in answers:
        assert answer == await stored(client, answer["id"])
    assert answers[-1]["id"] == answers[2]["id"]  # the unique_key holder, read back
