"""Built-in demo handlers, registered when ``nexq run`` gets no ``--app``,
so README's curl examples work at once."""

from __future__ import annotations

import random
from typing import Any

import trio

from ..app import Context, Nexq


def demo_app() -> Nexq:
    app = Nexq()

    @app.task("send_email", max_retries=3, timeout=30)
    async def send_email(ctx: Context, payload: Any) -> dict[str, Any]:
        """Pretend to send an email (50-300 ms)."""
        to = payload.get("to") if isinstance(payload, dict) else None
        await ctx.progress(0.1, "connecting to the mail server")
        await trio.sleep(random.uniform(0.05, 0.3))
        return {"sent": True, "to": to}

    @app.task("generate_report", max_retries=2, timeout=120)
    async def generate_report(ctx: Context, payload: Any) -> dict[str, Any]:
        """Pretend to build a report in 5 steps, reporting progress."""
        for step in range(5):
            await ctx.progress(step / 5, f"step {step + 1} of 5")
            await trio.sleep(random.uniform(0.1, 0.4))
        await ctx.progress(1.0, "done")
        return {"report": "ready", "rows": random.randint(100, 10_000)}

    @app.task("noop", max_retries=0)
    async def noop(payload: Any) -> None:
        """Does nothing: for benchmarks and smoke tests."""
        return None

    return app
