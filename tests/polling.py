"""Waiting for a condition from sync test code (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(fn: Callable[[], Any], limit: float = 30.0, every: float = 0.02) -> Any:
    """fn()'s first truthy value, tried every ``every`` s; TimeoutError after ``limit`` s."""
    deadline = time.monotonic() + limit
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {value!r} after {limit} s")
        time.sleep(every)
