"""How the ``nexq`` command fails: one line on stderr and a documented exit code.

trio wraps errors raised inside nurseries (the store's connections, the
service's agents) in ExceptionGroups; :func:`unwrap` finds the error that
explains the failure so the edge in ``main`` can name it.
"""

from __future__ import annotations

import errno

import trio

from ..config import ConfigError
from ..errors import (
    InvalidStoreURL,
    NexqError,
    StoreAuthError,
    StoreUnavailable,
    TaskNotFound,
)

OK, FAILURE, USAGE, UNREACHABLE, NOT_FOUND, INTERRUPTED = 0, 1, 2, 3, 4, 130

EXIT_CODES = """exit codes:
  0    success
  1    other failure: a doctor check failed, a task is in the wrong state to
       cancel or retry, the HTTP port is in use, an unexpected error
  2    bad usage: unknown option, bad value, missing or extra argument
  3    the store (or the --api server) is unreachable or refused the credentials
  4    not found: no task with that id
  130  interrupted (Ctrl-C)
Every error is one line on stderr; --log-level debug adds the traceback."""


class CliError(Exception):
    """A failure the command reports as one line, with its exit code."""

    code = FAILURE

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(CliError):
    """A problem with how nexq was called (exit 2)."""

    code = USAGE


class NotFound(CliError):
    """The task (or other thing) named does not exist (exit 4)."""

    code = NOT_FOUND


class Unreachable(CliError):
    """The store or API server cannot be reached or refused us (exit 3)."""

    code = UNREACHABLE


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def _rank(exc: BaseException) -> int:
    # Which of several errors explains the failure best: an interrupt, then
    # ours (they name the problem), then anything else.
    if isinstance(exc, KeyboardInterrupt):
        return 0
    if isinstance(exc, (CliError, NexqError)):
        return 1
    return 2


def unwrap(exc: BaseException) -> BaseException:
    """``exc`` itself, or for an exception group the leaf that explains it
    (trio's Cancelled leaves are only a consequence, never the reason)."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves = [e for e in _leaves(exc) if not isinstance(e, trio.Cancelled)]
    return min(leaves, key=_rank) if leaves else exc


def describe(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for an (unwrapped) error."""
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    if isinstance(exc, CliError):
        code, message = exc.code, str(exc)
    elif isinstance(exc, (ConfigError, InvalidStoreURL)):
        code, message = USAGE, str(exc)
    elif isinstance(exc, StoreAuthError):
        code, message = UNREACHABLE, (f"the store refused the credentials ({exc}): pass the password "
                                      "in the URL, e.g. redis://:PASSWORD@host:6379")
    elif isinstance(exc, StoreUnavailable):
        code, message = UNREACHABLE, f"the store is unreachable: {exc}"
    elif isinstance(exc, TaskNotFound):
        code, message = NOT_FOUND, f"task {str(exc)!r} not found"
    elif isinstance(exc, NexqError):
        code, message = FAILURE, str(exc)
    elif isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
        code, message = FAILURE, f"cannot listen: {exc.strerror} ({exc}); pass another --host/--port"
    else:
        code, message = FAILURE, (f"unexpected {type(exc).__name__}: {exc} "
                                  "(run with --log-level debug for the traceback)")
    return code, " ".join(message.split())  # one line, whatever the message held
