"""The NexqError tree and the signals a handler may raise.

Every exception Nexq raises on purpose subclasses :class:`NexqError` and the
builtin it refines, so callers can catch either.
"""

from __future__ import annotations


class NexqError(Exception):
    """Base class of every error Nexq raises on purpose."""


class StoreError(NexqError):
    """The store refused or could not carry out a command."""


class StoreUnavailable(StoreError, ConnectionError):
    """The store cannot be reached now (down, refused, timed out, reset).

    Raised instead of raw socket errors, never after an unbounded wait; the
    client reconnects by itself on a later command once the server is back.
    """


class StoreAuthError(StoreError, PermissionError):
    """The store rejected our credentials (wrong or missing password)."""


class CommandNotAllowed(StoreError, ValueError):
    """A command outside Pogocache's command set was about to be sent."""


class StoreResponseError(StoreError):
    """The server answered a command with an error (e.g. INCR on text)."""


class InvalidStoreURL(NexqError, ValueError):
    """A store URL could not be understood."""


class Retry(NexqError):
    """Raise from a handler to retry the task after ``delay`` seconds.

    The attempt counts against ``max_retries`` like any failure; with no
    delay the task's backoff policy decides.
    """

    def __init__(self, delay: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = delay


class UnknownTaskType(NexqError, LookupError):
    """No handler is registered for a task's type in this worker."""


class TaskNotFound(NexqError, LookupError):
    """No task has that id (or it expired after its retention)."""


class ResultNotSerializable(NexqError, TypeError):
    """A handler returned a value JSON cannot carry (bytes, a set, a Decimal,
    an object, a dict with non-string keys, ...). The attempt fails with this
    error like any handler failure: it is retried, then dead."""


class StoreFull(NexqError):
    """New work is refused: the store is near its configured memory limit.

    Pogocache evicts keys silently once full, pending tasks included, so
    Nexq stops accepting work before that point (see README).
    """


class Defer(NexqError):
    """Raise from a handler or a ``before_process`` hook to run this attempt
    again after ``delay`` seconds without counting it against the retries
    (concurrency and rate limits use it)."""

    def __init__(self, delay: float, reason: str = "deferred") -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason
