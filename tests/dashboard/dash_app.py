"""The app the dashboard tests and screenshots run: handlers whose behaviour
the payload chooses, a few realistic ones, and cron entries."""

from __future__ import annotations

import random
from typing import Any

import trio

from nexq.app import Context, Nexq

app = Nexq()


@app.task("noop", max_retries=0)
async def noop(payload: Any) -> Any:
    """Return the payload (so it shows again as the result)."""
    return payload


@app.task("sleep", max_retries=0)
async def sleep(ctx: Context, payload: Any) -> dict[str, Any]:
    """Sleep payload['seconds'] in ten steps, reporting progress."""
    seconds = float(payload.get("seconds", 0)) if isinstance(payload, dict) else 0.0
    for step in range(10):
        await ctx.progress(step / 10, f"step {step + 1} of 10")
        await trio.sleep(seconds / 10)
    await ctx.progress(1.0, "done")
    return {"slept": seconds}


@app.task("fail_with", max_retries=0)
async def fail_with(ctx: Context, payload: Any) -> None:
    """Report progress with, then raise ValueError of, payload['message']
    (or the payload itself when it is a string)."""
    message = payload.get("message") if isinstance(payload, dict) else payload
    await ctx.progress(0.5, str(message))
    raise ValueError(message)


# -- realistic handlers for the screenshots (their sleeps stand for the work) ---------


@app.task("send_email", max_retries=3)
async def send_email(ctx: Context, payload: Any) -> dict[str, Any]:
    await ctx.progress(0.2, "connecting to the mail server")
    await trio.sleep(random.uniform(0.05, 0.3))
    return {"sent": True, "to": payload.get("to") if isinstance(payload, dict) else None}


@app.task("generate_report", max_retries=2)
async def generate_report(ctx: Context, payload: Any) -> dict[str, Any]:
    steps = int(payload.get("steps", 5)) if isinstance(payload, dict) else 5
    for step in range(steps):
        await ctx.progress(step / steps, f"rendering section {step + 1} of {steps}")
        await trio.sleep(float(payload.get("step_seconds", 0.3)) if isinstance(payload, dict) else 0.3)
    await ctx.progress(1.0, "done")
    return {"report": "ready", "rows": random.randint(100, 10_000)}


@app.task("resize_image", max_retries=3)
async def resize_image(payload: Any) -> dict[str, Any]:
    await trio.sleep(random.uniform(0.05, 0.4))
    if random.random() < 0.15:
        raise OSError("image store timed out")
    return {"width": 640, "height": 480}


class PaymentDeclined(Exception):
    pass


@app.task("charge_card", max_retries=1)
async def charge_card(payload: Any) -> None:
    await trio.sleep(0.05)
    raise PaymentDeclined(f"card ending {payload.get('last4', '0000')} declined: insufficient funds")


app.cron("nightly-report", "0 3 * * *", "generate_report", {"kind": "daily"})
app.cron("purge-sessions", "*/15 * * * *", "noop", {"purge": "sessions"})
app.cron("weekly-digest", "0 9 * * 1", "send_email", {"to": "team@example.com", "template": "digest"}, tz="Europe/Paris")
