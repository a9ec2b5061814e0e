"""An app whose only type has its own queue and retries, and a cron entry:
for the tests of processes that enqueue it without having its handler."""

from __future__ import annotations

from typing import Any

from nexq.app import Nexq

app = Nexq()


@app.task("deliver_mail", queue="mail", max_retries=0, priority=7, timeout=12)
async def deliver_mail(payload: Any) -> dict[str, Any]:
    return {"delivered": payload}


app.cron("mail-digest", "0 6 * * *", "deliver_mail", {"digest": True})
