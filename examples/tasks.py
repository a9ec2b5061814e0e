"""The tasks the recipes enqueue, and the app whose workers run them.

Start a worker (the store comes from NEXQ_STORE when set, else the URL below):

    nexq worker --app examples.tasks:app

The web apps and the script import this module for its handlers' defaults
(``send_email`` goes to the ``emails`` queue with 3 retries) and enqueue
through ``send_email.enqueue(...)`` / ``app.client()`` (sync code) or
``nexq.AsyncClient(app=app)`` (asyncio): the same store, the same defaults.
"""

from __future__ import annotations

from typing import Any

from nexq import Nexq

app = Nexq("pogocache://127.0.0.1:9401", namespace="examples")


@app.task("send_email", queue="emails", max_retries=3, timeout=30)
def send_email(payload: dict[str, Any]) -> dict[str, Any]:
    # A real handler would talk to an SMTP server here.
    return {"sent_to": payload["to"]}


@app.task("resize")
def resize(payload: dict[str, Any]) -> dict[str, Any]:
    width = int(payload.get("width", 640))
    return {"id": payload["id"], "thumbnail_width": width // 4}
