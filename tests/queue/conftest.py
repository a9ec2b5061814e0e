from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from nexq.queue import Broker
from nexq.store import Store


@pytest.fixture
def make_broker(store: Store, prefix: str) -> Callable[..., Broker]:
    """Brokers on the parametrised store, isolated by this test's prefix."""

    def make(**options: object) -> Broker:
        options.setdefault("bucket_ms", 50)
        return Broker(store, namespace=prefix.rstrip(":"), **options)  # type: ignore[arg-type]

    return make


def trio_clock(offset: float = 1_800_000_000.0) -> Callable[[], float]:
    """Wall-like timestamps that follow trio's (autojump) clock."""
    return lambda: trio.current_time() + offset
