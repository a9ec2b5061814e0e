"""What producers ask for and get back, and the validation every enqueue
path shares (:func:`make_spec`); pure data, no store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from ..task import (
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    RetryPolicy,
    TaskSpec,
    new_task_id,
    parse_priority,
)
from ..webhook_url import check_url
from .context import WebhookPolicy


@attrs.frozen
class EnqueueRequest:
    """What a producer asks for; validated by :func:`make_spec`."""

    type: str
    payload: Any = None
    queue: str = DEFAULT_QUEUE
    priority: int | str = DEFAULT_PRIORITY
    delay: float | None = None
    run_at: float | None = None
    max_retries: int = 3
    timeout: float | None = None
    unique_key: str | None = None
    task_id: str | None = None
    retry: RetryPolicy = RetryPolicy()
    webhook: str | None = None
    expires_in: float | None = None  # seconds from now: cancelled if not started by then
    expires_at: float | None = None  # the same as a unix time
    depends_on: Sequence[str] = ()  # run only after these tasks succeed
    on_parent_failure: str = "cancel"  # "cancel" or "run" when a parent ends dead / cancelled


@attrs.frozen
class Enqueued:
    task_id: str
    created: bool  # False: a live task with the same unique_key was returned


@attrs.frozen
class Claimed:
    """An attempt this worker owns: run it, heartbeat it, then finish it."""

    spec: TaskSpec
    attempt: int
    worker: str
    started_at: float
    node: int = 0  # which store node it came from (see nexq.queue.cluster)


def make_spec(req: EnqueueRequest, now: float, webhooks: WebhookPolicy = WebhookPolicy()) -> TaskSpec:
    """Validate ``req`` into the spec to store (id and times filled in);
    raises ValueError naming the bad field. Writes nothing."""
    if not isinstance(req.type, str) or not req.type.strip():
        raise ValueError("type must be a non-empty string")
    if not isinstance(req.queue, str) or not req.queue or any(c in req.queue for c in ":|,*/?#%"):
        raise ValueError("queue must be a non-empty name without ':', '|', ',', '*', '/', '?', '#' or '%'")
    if req.delay is not None and req.delay < 0:
        raise ValueError("delay must not be negative")
    if req.max_retries < 0:
        raise ValueError("max_retries must not be negative")
    if req.timeout is not None and req.timeout <= 0:
        raise ValueError("timeout must be positive")
    run_at = req.run_at
    if req.delay:
        run_at = now + req.delay
    if run_at is not None and run_at <= now:
        run_at = None
    expires_at = req.expires_at
    if req.expires_in is not None:
        if req.expires_in <= 0:
            raise ValueError("expires_in must be positive")
        expires_at = now + req.expires_in
    if expires_at is not None and expires_at <= max(now, run_at or now):
        raise ValueError("the task would expire before it could start (expires_at <= run time)")
    if req.on_parent_failure not in ("cancel", "run"):
        raise ValueError("on_parent_failure must be 'cancel' or 'run'")
    if isinstance(req.depends_on, str) or len(set(req.depends_on)) != len(req.depends_on):
        raise ValueError("depends_on must be a list of distinct task ids")
    if req.webhook is not None:
        check_url(req.webhook, webhooks.allow_private)  # WebhookRefused is a ValueError
    tid = req.task_id or new_task_id()
    if "|" in tid or "," in tid or ":" in tid:
        raise ValueError("task_id must not contain '|', ',' or ':'")
    return TaskSpec(
        id=tid,
        type=req.type,
        queue=req.queue,
        priority=parse_priority(req.priority),
        payload=req.payload,
        max_retries=req.max_retries,
        timeout=req.timeout,
        unique_key=req.unique_key,
        created_at=now,
        run_at=run_at,
        retry=req.retry,
        webhook=req.webhook,
        expires_at=expires_at,
        depends_on=tuple(req.depends_on),
        on_parent_failure=req.on_parent_failure,
    )
