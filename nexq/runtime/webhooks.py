"""Webhooks: POST a signed JSON notice when a task succeeds, dies or fails.

A task's webhook URL comes from the task (``webhook``), else its type's
default (``@app.task(webhook=...)``), else the process-wide
``NEXQ_WEBHOOK_URL``. When the task ends (``succeeded`` / ``dead``, and with
``NEXQ_WEBHOOK_ON_FAILURE`` each failed attempt) the winner of the outcome
enqueues a delivery: an ordinary task of the built-in type ``nexq.webhook``
on the ``_webhooks`` queue, so deliveries are retried with backoff, survive
crashes and show up like any task. Each delivery attempt is recorded on the
task (``hook:{id}``) and shown by the API and dashboard.

Requests carry ``X-Nexq-Timestamp`` and ``X-Nexq-Signature: sha256=HEX``,
the HMAC-SHA256 of ``"{timestamp}.{body}"`` with ``NEXQ_WEBHOOK_SECRET``.

Targets on loopback, private, link-local, multicast or reserved addresses
are refused (server-side request forgery) unless
``NEXQ_WEBHOOK_ALLOW_PRIVATE`` is set: literal addresses when the task is
enqueued, resolved names again just before each delivery.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import urllib.parse
from typing import Any

import attrs
import trio

from ..codec import dumps
from ..hooks import Middleware, Terminal
from ..queue import EnqueueRequest, NodeBroker
from ..store import Batch
from ..task import Attempt, RetryPolicy, TaskSpec
from ..webhook_url import (
    WEBHOOK_QUEUE,
    WEBHOOK_TYPE,
    WebhookRefused,
    blocked,
    check_url,
    sign,
    verify,
)

__all__ = ["WEBHOOK_QUEUE", "WEBHOOK_TYPE", "WebhookRefused", "WebhookSettings", "Webhooks", "check_url", "verify"]


@attrs.frozen
class WebhookSettings:
    url: str | None = None  # the global default
    secret: str | None = attrs.field(default=None, repr=False)
    allow_private: bool = False
    on_failure: bool = False
    timeout: float = 10.0


async def check_resolved(host: str, port: int, allow_private: bool) -> None:
    """Resolve ``host`` and refuse it if any address is in a refused range."""
    if allow_private:
        return
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        why = blocked(ip)
        if why:
            raise WebhookRefused(f"webhook host {host} resolves to {ip}, which is {why}; refused")


async def deliver(settings: WebhookSettings, url: str, body: bytes) -> int:
    """POST ``body`` to ``url``; returns the status code.

    Raises WebhookRefused for a refused target (not worth retrying) and
    httpx errors or RuntimeError for a failed delivery (retried).
    """
    import httpx

    host = check_url(url, settings.allow_private)
    parts = urllib.parse.urlsplit(url)
    await check_resolved(host, parts.port or (443 if parts.scheme == "https" else 80), settings.allow_private)
    ts = str(int(time.time()))
    headers = {"content-type": "application/json", "user-agent": "nexq-webhook", "x-nexq-timestamp": ts}
    if settings.secret:
        headers["x-nexq-signature"] = sign(settings.secret, ts, body)
    async with httpx.AsyncClient(timeout=settings.timeout, follow_redirects=False) as client:
        r = await client.post(url, content=body, headers=headers)
    if not 200 <= r.status_code < 300:
        raise RuntimeError(f"webhook answered HTTP {r.status_code}")
    return r.status_code


def delivery_record(event: str, url: str, attempt: int, ok: bool, status: int | None, error: str | None) -> dict[str, Any]:
    return {"event": event, "url": url, "attempt": attempt, "ok": ok, "status": status,
            "error": error, "at": time.time()}


class Webhooks(Middleware):
    """Enqueues a delivery task when a task with a webhook ends (and, with
    ``on_failure``, when an attempt fails), and runs those deliveries: its
    :meth:`deliver` is the handler of ``nexq.webhook`` tasks."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings

    async def on_failure(self, node: NodeBroker, spec: TaskSpec, attempt: Attempt) -> None:
        if self.settings.on_failure:
            await self._notify(node, spec, "failed", attempt.number)

    async def after_terminal(self, node: NodeBroker, event: Terminal) -> None:
        if event.state in ("succeeded", "dead"):
            await self._notify(node, event.spec, event.state, event.attempt)

    async def _notify(self, node: NodeBroker, spec: TaskSpec, event: str, attempt: int) -> None:
        """Enqueue a delivery for ``event`` on the task's own node, if it has a webhook."""
        url = spec.webhook or self.settings.url
        if url is None or spec.type == WEBHOOK_TYPE:
            return
        req = EnqueueRequest(
            WEBHOOK_TYPE, {"task": spec.id, "event": event, "url": url, "attempt": attempt},
            queue=WEBHOOK_QUEUE, max_retries=8, retry=RetryPolicy(base=2.0, cap=300.0),
            # a redone follow-up must not deliver twice while the first is live
            unique_key=f"webhook:{spec.id}:{attempt}:{event}",
        )
        await node.enqueue_many([req])

    async def deliver(self, ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
        """The built-in handler of ``nexq.webhook`` tasks (every worker has it).

        Records each try on the task; a refused target is recorded and not
        retried, any other failure raises so the delivery is retried with backoff.
        """
        # The delivery task was enqueued on the node of the task it reports
        # on (its follow-up wrote it there): read and record beside the task.
        node: NodeBroker = ctx.node
        task = await node.inspector().get(payload["task"])
        body = dumps({"event": payload["event"], "task": task.to_json() if task else {"id": payload["task"]}})
        status: int | None = None
        error: str | None = None
        try:
            status = await deliver(self.settings, payload["url"], body)
            return {"status": status}
        except WebhookRefused as exc:
            error = str(exc)
            return {"refused": error}
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            rec = delivery_record(payload["event"], payload["url"], ctx.attempt, error is None, status, error)
            key = node.keys.hooks(payload["task"])
            await node.store.execute(
                Batch().append(key, dumps(rec) + b"\n").expire(key, node.ctx.retention_s))
