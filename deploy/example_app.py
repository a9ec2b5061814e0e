"""The example app deploy/compose.yaml serves: ``--app example_app:app``.

Replace it with your own module (``--app myproject.tasks:app``). The store
and namespace come from the environment (NEXQ_STORE, NEXQ_NAMESPACE), so the
same module runs in every service: the API (which takes the handlers'
defaults from it), the workers (which run them) and your producers.

Try it once the stack is up (the token is deploy/secrets/nexq_api_token)::

    curl -H "Authorization: Bearer $(cat deploy/secrets/nexq_api_token)" \\
         -d '{"type": "send_email", "payload": {"to": "ada@example.com"}}' \\
         -H 'Content-Type: application/json' http://127.0.0.1:8080/api/tasks
"""

from __future__ import annotations

import hashlib
from typing import Any

import trio

from nexq import Context, Nexq

app = Nexq()


@app.task("send_email", max_retries=5, timeout=30, retry_on=(ConnectionError, TimeoutError))
async def send_email(ctx: Context, payload: Any) -> dict[str, Any]:
    """Network trouble is retried with backoff; a bad address is not."""
    to = payload["to"]
    if "@" not in to:
        raise ValueError(f"not an e-mail address: {to!r}")
    await ctx.progress(0.5, f"connecting for {to}")
    await trio.sleep(0.2)  # stands in for the SMTP conversation
    return {"sent_to": to}


@app.task("call_partner_api", rate_limit="10/s;burst=5", concurrency_limit=4, max_retries=3)
async def call_partner_api(payload: Any) -> str:
    """At most 10 calls a second across every worker (5 at once after a
    quiet spell) and 4 in flight: what the partner allows."""
    await trio.sleep(0.1)  # stands in for the HTTP call
    return f"called for {payload!r}"


@app.task("checksum", queue="cpu", timeout=120)
def checksum(payload: Any) -> str:
    """A plain function: it runs in a worker thread."""
    return hashlib.sha256(str(payload).encode()).hexdigest()


app.cron("nightly-report", "0 3 * * *", "checksum", {"report": "nightly"})
