"""Values written behind Nexq's back cost only their own entry.

A background step reads many keys at once (a wheel bucket names dozens of
attempts, a claim round a batch of specs). One malformed value must not
fail the step, or every other entry of it would be stuck with it: readers
decode through :func:`decoded`, which logs the key and returns None, and
treat the entry as missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger("nexq.queue")
T = TypeVar("T")


def decoded(decode: Callable[[bytes], T], raw: bytes, key: str) -> T | None:
    """``decode(raw)``, or None (logged with ``key``) if ``raw`` is malformed."""
    try:
        return decode(raw)
    except Exception as exc:  # noqa: BLE001 - a foreign value can break a decoder in any way
        skipped(key, raw, exc)
        return None


def skipped(key: str, raw: bytes, exc: Exception) -> None:
    """Log a malformed value that was skipped."""
    log.error("malformed value at %s skipped (%s: %s): %r", key, type(exc).__name__, exc, raw[:80])
