"""Clocks for tests that run under trio's autojump clock."""

from __future__ import annotations

from collections.abc import Callable

import trio


def trio_clock(offset: float = 1_800_000_000.0) -> Callable[[], float]:
    """Wall-like timestamps that follow trio's (autojump) clock: a NodeBroker given
    this clock sees time pass exactly as trio.sleep makes it pass."""
    return lambda: trio.current_time() + offset
