from __future__ import annotations

from collections.abc import Callable

import trio


def trio_clock(offset: float = 1_800_000_000.0) -> Callable[[], float]:
    """Wall-like timestamps that follow trio's (autojump) clock."""
    return lambda: trio.current_time() + offset
