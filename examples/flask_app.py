"""Flask (sync, threaded): enqueue from a view with the task's own ``enqueue``.

    flask --app examples.flask_app run       # and a worker: nexq worker --app examples.tasks:app

``send_email.enqueue(...)`` goes through the tasks app's blocking client
(``tasks.client()``): built on first use, shared by every request thread.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, jsonify, request

from examples.tasks import app as tasks
from examples.tasks import send_email
from nexq import StoreFull, StoreUnavailable

web = Flask(__name__)


@web.post("/signup")
def signup() -> Any:
    handle = send_email.enqueue({"to": request.get_json()["email"]})
    return jsonify(task_id=handle.id), 202


@web.get("/tasks/<task_id>")
def task_status(task_id: str) -> Any:
    task = tasks.client().get(task_id)
    if task is None:
        abort(404)
    return jsonify(id=task.id, status=task.status.value, result=task.result)


@web.errorhandler(StoreUnavailable)
@web.errorhandler(StoreFull)
def store_trouble(exc: Exception) -> Any:
    return jsonify(error=str(exc)), 503
