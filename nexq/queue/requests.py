"""What producers ask for and get back, and the validation every enqueue
path shares (:func:`make_spec`); pure data, no store."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..task import (
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    NO_HEADERS,
    RetryPolicy,
    TaskSpec,
    new_task_id,
    parse_priority,
)
from ..webhook_url import check_url
from .context import WebhookPolicy

# The rules of a request, enforced by make_spec on every enqueue path. The
# REST schemas (nexq.api.schemas) are built from these same constants, so
# the Python API and HTTP refuse the same things. A "solid" character is
# whitespace neither to ECMA-262 (clients' schema tools) nor to Python.
NOT_SOLID = r"\s\u001c-\u001f\u0085\ufeff"
SOLID_CHAR = f"[^{NOT_SOLID}]"
# Control characters (C0, DEL, C1) and line separators: never in a type,
# where they would break log lines, metrics labels and the dashboard.
CONTROL = r"\u0000-\u001f\u007f-\u009f\u2028\u2029"
TYPE_PATTERN = f"^[^{CONTROL}]*[^{NOT_SOLID}{CONTROL}][^{CONTROL}]*$"
TYPE_RULE = "a name with a non-space character and no control characters (newline, tab, ...)"
QUEUE_PATTERN = f"^[^{NOT_SOLID}:|,*/?#%]+$"
WEBHOOK_PATTERN = "^https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[!-~]*)?$"
WEBHOOK_RULE = "an http(s) URL with a host name or address"
MAX_TYPE = 200
MAX_QUEUE = 100
MAX_RETRIES = 1000
MAX_TIMEOUT = 365 * 86_400.0
MAX_DELAY = 10 * 365 * 86_400.0
MAX_RUN_AT = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_UNIQUE_KEY = 1024
MAX_PARENTS = 1000
MAX_TASK_ID = 256
MAX_HEADERS = 32  # entries in a task's headers
MAX_HEADER_NAME = 128
MAX_HEADERS_SIZE = 8192  # characters of all names and values together
_TYPE_RE = re.compile(TYPE_PATTERN[:-1] + r"\Z")
_QUEUE_RE = re.compile(QUEUE_PATTERN[:-1] + r"\Z")  # ECMA's final $ is the end of input
_WEBHOOK_RE = re.compile(WEBHOOK_PATTERN[:-1] + r"\Z")


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
    headers: Mapping[str, str] | None = None  # text carried to the handler (trace context: nexq.otel)


@attrs.frozen
class Enqueued:
    task_id: str
    created: bool  # False: a live task with the same unique_key was returned
    # The spec as written when this call created the task (None otherwise):
    # lets a caller answer with the new task without reading it back.
    spec: TaskSpec | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Claimed:
    """An attempt this worker owns: run it, heartbeat it, then finish it."""

    spec: TaskSpec
    attempt: int
    worker: str
    started_at: float
    node: int = 0  # which store node it came from (see nexq.queue.cluster)
    free: int = 0  # the task's earlier attempts not counted against its retries (cur's free)


def make_spec(req: EnqueueRequest, now: float, webhooks: WebhookPolicy = WebhookPolicy()) -> TaskSpec:
    """Validate ``req`` into the spec to store (id and times filled in);
    raises ValueError naming the bad field. Writes nothing."""
    _check_fields(req)
    run_at = req.run_at
    if req.delay:
        run_at = now + req.delay
    if run_at is not None and run_at <= now:
        run_at = None
    expires_at = req.expires_at
    if req.expires_in is not None:
        expires_at = now + req.expires_in
    if expires_at is not None and expires_at <= max(now, run_at or now):
        raise ValueError("the task would expire before it could start (expires_at <= run time)")
    if req.webhook is not None:
        check_url(req.webhook, webhooks.allow_private)  # WebhookRefused is a ValueError
    tid = req.task_id or new_task_id()
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
        headers=dict(req.headers) if req.headers else NO_HEADERS,
    )



def _number(name: str, value: Any, low: float, high: float, *, above: bool = False) -> None:
    """``value`` is a finite number in [low, high] ((low, high] with ``above``)."""
    if type(value) in (int, float) and low <= value <= high and not (above and value == low):
        return  # the common case, decided in one line
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if value < low or (above and value == low):
        raise ValueError(f"{name} must be {'positive' if above and low == 0 else f'at least {low:g}'}")
    if value > high:
        raise ValueError(f"{name} must be at most {high:g}")


def _name(name: str, value: Any, longest: int, allowed: re.Pattern[str], rule: str) -> None:
    if not isinstance(value, str) or not value or len(value) > longest or not allowed.search(value):
        raise ValueError(f"{name} must be {rule}, at most {longest} characters; not {value!r}")


# (type, queue) pairs found valid: producers reuse a few, so each is checked once.
_GOOD_NAMES: set[tuple[str, str]] = set()


def _check_fields(req: EnqueueRequest) -> None:
    """Each field of ``req`` alone is valid (types, ranges, names; priority
    is make_spec's); raises ValueError naming the first bad one."""
    names = (req.type, req.queue)
    if type(req.type) is not str or type(req.queue) is not str or names not in _GOOD_NAMES:
        _name("type", req.type, MAX_TYPE, _TYPE_RE, TYPE_RULE)
        _name("queue", req.queue, MAX_QUEUE, _QUEUE_RE,
              "a name without whitespace, ':', '|', ',', '*', '/', '?', '#' or '%'")
        if len(_GOOD_NAMES) < 10_000:
            _GOOD_NAMES.add(names)
    if type(req.max_retries) is not int:
        raise ValueError(f"max_retries must be an integer, not {req.max_retries!r}")
    _number("max_retries", req.max_retries, 0, MAX_RETRIES)
    if req.timeout is not None:
        _number("timeout", req.timeout, 0, MAX_TIMEOUT, above=True)
    if req.delay is not None:
        _number("delay", req.delay, 0, MAX_DELAY)
    if req.run_at is not None:
        _number("run_at", req.run_at, 0, MAX_RUN_AT)
    if req.expires_in is not None:
        _number("expires_in", req.expires_in, 0, MAX_DELAY, above=True)
    if req.expires_at is not None:
        _number("expires_at", req.expires_at, 0, MAX_RUN_AT)
    if req.unique_key is not None and (type(req.unique_key) is not str or not req.unique_key
                                       or len(req.unique_key) > MAX_UNIQUE_KEY):
        raise ValueError(f"unique_key must be a non-empty string of at most {MAX_UNIQUE_KEY} characters")
    if type(req.retry) is not RetryPolicy:
        raise ValueError(f"retry must be a nexq RetryPolicy, not {req.retry!r}")
    if req.webhook is not None and (type(req.webhook) is not str or not _WEBHOOK_RE.search(req.webhook)):
        raise ValueError(f"webhook must be {WEBHOOK_RULE}, not {req.webhook!r}")
    if req.on_parent_failure != "cancel" and req.on_parent_failure != "run":
        raise ValueError("on_parent_failure must be 'cancel' or 'run'")
    if type(req.depends_on) is not tuple or req.depends_on:  # () is the default
        _check_parents(req.depends_on)
    if req.headers is not None:
        _check_headers(req.headers)
    tid = req.task_id
    if tid is not None and (type(tid) is not str or not tid or len(tid) > MAX_TASK_ID
                            or "|" in tid or "," in tid or ":" in tid):
        raise ValueError(f"task_id must be 1-{MAX_TASK_ID} characters without '|', ',' or ':'")


def _check_parents(parents: Any) -> None:
    if (isinstance(parents, str) or not isinstance(parents, Sequence) or len(parents) > MAX_PARENTS
            or len(set(parents)) != len(parents)
            or not all(isinstance(p, str) and 0 < len(p) <= MAX_TASK_ID for p in parents)):
        raise ValueError(f"depends_on must be a list of at most {MAX_PARENTS} distinct task ids")


def _check_headers(headers: Any) -> None:
    if not isinstance(headers, Mapping) or len(headers) > MAX_HEADERS:
        raise ValueError(f"headers must be an object of at most {MAX_HEADERS} names to text values")
    size = 0
    for name, value in headers.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_HEADER_NAME:
            raise ValueError(f"headers: each name must be text of 1-{MAX_HEADER_NAME} characters, not {name!r}")
        if not isinstance(value, str):
            raise ValueError(f"headers: the value of {name!r} must be text, not {value!r}")
        size += len(name) + len(value)
    if size > MAX_HEADERS_SIZE:
        raise ValueError(f"headers must hold at most {MAX_HEADERS_SIZE} characters of names and values, not {size}")
