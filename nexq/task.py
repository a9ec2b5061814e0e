"""Pure data: Task, its status and attempts, and the retry policy."""

from __future__ import annotations

import enum
import os
import random
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

PRIORITY_ALIASES = {"low": 0, "normal": 5, "high": 9}
# A priority given as text: one digit or an alias in any case, nothing around it.
PRIORITY_TEXT = "^([0-9]|[lL][oO][wW]|[nN][oO][rR][mM][aA][lL]|[hH][iI][gG][hH])$"
_PRIORITY_TEXT_RE = re.compile(PRIORITY_TEXT[:-1] + r"\Z")  # ECMA's final $ is the end of input
DEFAULT_PRIORITY = 5
DEFAULT_QUEUE = "default"
NO_HEADERS: Mapping[str, str] = MappingProxyType({})  # shared by every task without headers


class Status(str, enum.Enum):
    """Where a task is in its life; derived from its keys, never stored alone."""

    WAITING = "waiting"  # for its parent tasks (depends_on) to succeed
    SCHEDULED = "scheduled"  # waiting for its run time in the time wheel
    PENDING = "pending"  # in a ready lane
    RUNNING = "running"  # a worker holds a live lease on the current attempt
    RETRYING = "retrying"  # an attempt failed; the next one waits for its backoff
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # out of retries: in the dead-letter queue
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (Status.SUCCEEDED, Status.DEAD, Status.CANCELLED)


class Outcome(str, enum.Enum):
    """How one attempt ended: decided once per attempt."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the handler raised
    LOST = "lost"  # the worker vanished (lease expired)
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    DEFERRED = "deferred"  # not run: a concurrency or rate limit was reached
    HANDED_BACK = "handed_back"  # its worker shut down and gave it back: not counted


def parse_priority(value: Any) -> int:
    """0-9 (higher runs first), also as text ("7", as typed on a command line
    or sent as JSON), or low / normal / high in any case; raises ValueError.
    Text is exactly :data:`PRIORITY_TEXT` (the REST schema's pattern)."""
    if isinstance(value, str) and _PRIORITY_TEXT_RE.match(value):
        return int(value) if value.isdigit() else PRIORITY_ALIASES[value.lower()]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"priority must be 0-9 or low/normal/high, not {value!r}")
    if not 0 <= value <= 9:
        raise ValueError(f"priority must be between 0 and 9, not {value}")
    return value


def new_task_id() -> str:
    """A unique, URL-safe id that sorts by creation time (ms, then random)."""
    return f"{time.time_ns() // 1_000_000:011x}{os.urandom(6).hex()}"


@attrs.frozen
class RetryPolicy:
    """Exponential backoff with full jitter, capped: delay for attempt n >= 1."""

    base: float = 1.0
    cap: float = 300.0
    factor: float = 2.0

    def delay(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failed_attempt`` failed: uniform in [0, ceiling]."""
        ceiling = min(self.cap, self.base * self.factor ** (failed_attempt - 1))
        return (rng or random).uniform(0, ceiling)


@attrs.frozen
class Attempt:
    """One run of a task: who ran it, when, and how it ended."""

    number: int
    outcome: Outcome | None = None  # None while running or not started
    worker: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None


@attrs.frozen
class TaskSpec:
    """What was asked for; written once at enqueue, never changed."""

    id: str
    type: str
    queue: str = DEFAULT_QUEUE
    priority: int = DEFAULT_PRIORITY
    payload: Any = None
    max_retries: int = 3
    timeout: float | None = None
    unique_key: str | None = None
    created_at: float = 0.0
    run_at: float | None = None  # None: run as soon as possible
    seq: int = 0  # position in the listing index
    retry: RetryPolicy = RetryPolicy()
    webhook: str | None = None  # URL notified when the task ends (see nexq.runtime.webhooks)
    expires_at: float | None = None  # cancelled ("Expired") if not started by then
    depends_on: tuple[str, ...] = ()  # parents that must succeed first
    on_parent_failure: str = "cancel"  # or "run": what a dead / cancelled parent does
    # Text carried with the task to its handler, e.g. the trace context
    # (W3C ``traceparent``) that nexq.otel propagates; stored only when set.
    headers: Mapping[str, str] = attrs.field(default=NO_HEADERS, hash=False)


@attrs.frozen
class Task:
    """A task as read back: its spec plus the state derived from its keys."""

    spec: TaskSpec
    status: Status
    attempt: int  # attempts counted against the retries, the current (or last) one included, from 1
    attempts: tuple[Attempt, ...] = ()
    result: Any = None
    progress: dict[str, Any] | None = None
    scheduled_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    webhooks: tuple[dict[str, Any], ...] = ()  # delivery attempts of its webhook
    children: tuple[str, ...] = ()  # tasks that depend on this one

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def type(self) -> str:
        return self.spec.type

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for the API, CLI and dashboard."""
        s = self.spec
        last = self.attempts[-1] if self.attempts else None
        return {
            "id": s.id,
            "type": s.type,
            "queue": s.queue,
            "priority": s.priority,
            "payload": s.payload,
            "status": self.status.value,
            "attempt": self.attempt,
            "max_retries": s.max_retries,
            "timeout": s.timeout,
            "unique_key": s.unique_key,
            "webhook": s.webhook,
            "expires_at": s.expires_at,
            "depends_on": list(s.depends_on),
            "children": list(self.children),
            "on_parent_failure": s.on_parent_failure,
            "webhook_deliveries": list(self.webhooks),
            "created_at": s.created_at,
            "scheduled_at": self.scheduled_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "result": self.result,
            "progress": self.progress,
            "error": (
                {"type": last.error_type, "message": last.error_message, "traceback": last.traceback}
                if last is not None and last.error_type
                else None
            ),
            "attempts": [
                {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in attrs.asdict(a).items()}
                for a in self.attempts
            ],
        }
