"""TaskDef: a registered handler and the defaults for tasks of its type."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .errors import NexqError, Retry
from .runtime.limits import Limits, RateLimit
from .runtime.task_types import HANDLER_OPTIONS, TypeDefaults
from .task import RetryPolicy

if TYPE_CHECKING:
    from .app import Nexq
    from .client import Handle

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]


@attrs.frozen
class TaskDef:
    """A registered handler and the defaults for tasks of its type."""

    name: str
    fn: Callable[..., Any]
    max_retries: int | None = None
    timeout: float | None = None
    queue: str | None = None
    priority: int | str | None = None
    retry: RetryPolicy | None = None
    webhook: str | None = None
    concurrency_limit: int | None = None  # at most this many running, cluster-wide
    rate_limit: str | None = None  # at most COUNT per UNIT cluster-wide, e.g. "100/m"
    # where the handler runs: "async" (trio task), "thread" (plain functions'
    # default) or "process" (a plain function in a handler process)
    executor: str | None = None
    # Which handler exceptions are retried (Celery's autoretry_for, Dramatiq's
    # retry_when): only those matching retry_on when given, never those
    # matching dont_retry_on; any other ends the task dead at once.
    retry_on: ExceptionTypes | None = None
    dont_retry_on: ExceptionTypes | None = None
    limits: Limits = attrs.field(init=False)
    target: str | None = attrs.field(init=False, default=None)  # module:qualname, for "process"
    defaults: TypeDefaults = attrs.field(init=False)  # the options above, checked

    is_async: bool = attrs.field(init=False)
    wants_context: bool = attrs.field(init=False)
    app: Nexq | None = attrs.field(default=None, kw_only=True, repr=False, eq=False)  # registered on

    def __attrs_post_init__(self) -> None:
        # Decided once here, not per task run (inspect.signature is slow).
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.fn))
        try:
            wants = len(inspect.signature(self.fn).parameters) >= 2
        except (TypeError, ValueError):
            wants = False
        object.__setattr__(self, "wants_context", wants)
        self._check_executor()
        for option in ("retry_on", "dont_retry_on"):
            object.__setattr__(self, option, _exception_classes(self.name, option, getattr(self, option)))
        defaults = TypeDefaults(**{name: getattr(self, name) for name in HANDLER_OPTIONS})
        defaults.check(self.name)  # a bad default fails at @app.task, not at each enqueue
        object.__setattr__(self, "defaults", defaults)
        rate = RateLimit.parse(self.rate_limit) if self.rate_limit else None
        object.__setattr__(self, "limits", Limits(self.concurrency_limit, rate))

    def _check_executor(self) -> None:
        """Settle ``executor`` (default by the function's kind); ValueError
        naming the handler if it cannot run there."""
        kind = self.executor or ("async" if self.is_async else "thread")
        if kind not in ("async", "thread", "process"):
            raise ValueError(f"@app.task({self.name!r}): executor must be 'async', 'thread' or "
                             f"'process', not {kind!r}")
        if (kind == "async") != self.is_async:
            what = "an async function" if self.is_async else "a plain (def) function"
            raise ValueError(f"@app.task({self.name!r}): executor={kind!r} does not fit {what}: "
                             "async handlers run as 'async'; plain ones as 'thread' or 'process'")
        if kind == "process":
            if self.wants_context:
                raise ValueError(f"@app.task({self.name!r}): an executor='process' handler takes only "
                                 "the payload (a Context cannot cross into another process)")
            from .runtime.process_pool import handler_target

            object.__setattr__(self, "target", handler_target(self.fn))
        object.__setattr__(self, "executor", kind)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def enqueue(self, payload: Any = None, **options: Any) -> Handle:
        """Enqueue a task of this type from sync code (a web view, a script),
        through the app's blocking client (:meth:`Nexq.client`); options
        as ``app.enqueue``. Blocks for the store's round trips: in trio
        code use ``await app.enqueue(...)``, in asyncio ``nexq.AsyncClient``."""
        if self.app is None:
            raise NexqError(f"{self.name!r} is not registered on an app: use @app.task to enqueue it")
        return self.app.client().enqueue(self.name, payload, **options)

    def retries(self, error: BaseException | None) -> bool:
        """Whether a failed attempt's ``error`` may be retried (retries left
        permitting): ``Retry`` always; otherwise not when it matches
        ``dont_retry_on``, nor, when ``retry_on`` is given, when it matches
        none of it. A handler timeout is a ``TimeoutError``."""
        if error is None or isinstance(error, Retry):
            return True
        if self.dont_retry_on and isinstance(error, self.dont_retry_on):
            return False
        return self.retry_on is None or isinstance(error, self.retry_on)


def _exception_classes(name: str, option: str, value: Any) -> tuple[type[BaseException], ...] | None:
    """``value`` as a tuple of exception classes (None stays None); ValueError
    naming the handler and the option otherwise."""
    if value is None:
        return None
    classes = value if isinstance(value, tuple) else (value,)
    if not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
        raise ValueError(f"@app.task({name!r}): {option} must be an exception class or a tuple of them, "
                         f"not {value!r}")
    return classes
