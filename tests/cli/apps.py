"""An app for the CLI tests. Its store and namespace come from
NEXQ_TEST_APP_STORE / NEXQ_TEST_APP_NAMESPACE (as if written in the code),
a cron entry firing every second from NEXQ_TEST_APP_CRON."""

from __future__ import annotations

import os
from typing import Any

from nexq.app import Nexq

app = Nexq(os.environ.get("NEXQ_TEST_APP_STORE"), namespace=os.environ.get("NEXQ_TEST_APP_NAMESPACE", "nexq"))


@app.task("echo", max_retries=0)
async def echo(payload: Any) -> dict[str, Any]:
    """The payload back, and which process ran it."""
    return {"pid": os.getpid(), "payload": payload}


@app.task("tick", max_retries=0)
async def tick(payload: Any) -> Any:
    return payload


if os.environ.get("NEXQ_TEST_APP_CRON"):
    app.cron("every-second", "* * * * * *", "tick", {"cron": True})
