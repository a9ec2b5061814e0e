"""The Nexq app of benchmarks/peers.py: a `noop` handler and a `mark` handler
recording when it starts (for pick-up latency).

    nexq worker --store redis://127.0.0.1:PORT --app benchmarks.nexq_app:app
"""

from __future__ import annotations

from typing import Any

from benchmarks.peerbench.base import record_start
from nexq import Nexq


async def noop(payload: Any) -> None:
    return None


async def mark(payload: Any) -> None:
    record_start(payload)


def make_app(store: str | None = None, namespace: str = "nexq") -> Nexq:
    app = Nexq(store, namespace=namespace)
    app.register_handler("noop", noop)
    app.register_handler("mark", mark)
    return app


app = make_app()
