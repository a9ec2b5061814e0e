"""Take the dashboard screenshots in docs/screenshots/ (for the README).

    .venv/bin/python docs/screenshots/make.py [--out DIR]

Starts `nexq run` with the dashboard test app on a free port and its own
temporary data dir, fills it with a realistic mix of tasks, and saves one
PNG per page (the overview in light and dark) from Debian's Chromium.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.dashboard.helpers import Server, launch  # noqa: E402

VIEWPORT = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def populate(server: Server) -> dict[str, str]:
    """A believable mix: finished, failed, dead, scheduled, running tasks."""
    rnd = random.Random(7)
    ids: dict[str, str] = {}
    people = ["ada", "grace", "linus", "margaret", "ken", "barbara", "alan", "edsger"]
    for i in range(24):
        server.enqueue("send_email", {"to": f"{rnd.choice(people)}@example.com", "template": "welcome"},
                       queue="emails", priority=rnd.choice([5, 5, 7, 9]))
    for i in range(10):
        server.enqueue("resize_image", {"key": f"uploads/{1000 + i}.jpg", "width": 640}, queue="media")
    for last4 in ("4242", "0341"):
        server.enqueue("charge_card", {"last4": last4, "amount": 1999, "currency": "EUR"}, queue="billing",
                       priority="high")
    server.enqueue("fail_with", {"message": "upstream returned 502 Bad Gateway"}, queue="default")
    ids["report"] = server.enqueue("generate_report", {"kind": "monthly", "month": "2025-10", "steps": 4,
                                                       "step_seconds": 0.5}, queue="reports")["id"]
    for i in range(3):
        server.enqueue("send_email", {"to": f"{people[i]}@example.com", "template": "reminder"},
                       queue="emails", schedule_in=3600 * (i + 1))
    # A backlog on a paused queue shows depth by priority.
    server.enqueue("noop", {"warmup": True}, queue="exports")
    server.api("POST", "/api/queues/exports/pause")
    for p in (9, 7, 7, 5, 5, 5, 5, 2, 2, 0):
        server.enqueue("noop", {"export": "csv", "rows": rnd.randint(10, 9000)}, queue="exports", priority=p)
    return ids


def traffic(server: Server, seconds: float) -> None:
    """Steady traffic for a while, so the live chart has a shape."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        batch = [{"type": "send_email", "payload": {"to": f"user{n + k}@example.com"}, "queue": "emails"}
                 for k in range(random.randint(2, 9))]
        batch += [{"type": "resize_image", "payload": {"key": f"u/{n}.png"}, "queue": "media"}
                  for _ in range(random.randint(0, 3))]
        server.api("POST", "/api/tasks/batch", json={"tasks": batch})
        n += len(batch)
        time.sleep(0.5)


def rnd_type(i: int) -> str:
    return "resize_image" if i % 4 == 0 else "send_email"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent))
    parser.add_argument("--warmup", type=float, default=40.0, help="seconds of traffic before the overview shot")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    server = Server()
    server.start()
    try:
        ids = populate(server)
        with sync_playwright() as pw:
            browser = launch(pw)
            ctx = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, color_scheme="light")
            page = ctx.new_page()
            page.goto(server.url + "/#/")
            phone = browser.new_context(viewport=PHONE, device_scale_factor=2, color_scheme="dark",
                                        is_mobile=True, has_touch=True)
            ppage = phone.new_page()
            ppage.goto(server.url + "/#/")
            # Both overviews collect their live chart samples during the traffic.
            traffic(server, args.warmup)
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                page.wait_for_timeout(600)
                page.screenshot(path=str(out / f"overview-{scheme}.png"))
            ppage.screenshot(path=str(out / "overview-phone.png"))
            # Wide tables scroll inside their box and say so.
            ppage.goto(server.url + "/#/queues")
            ppage.wait_for_timeout(1500)
            ppage.screenshot(path=str(out / "queues-phone.png"))
            phone.close()
            page.emulate_media(color_scheme="light")

            # The task list mid-burst: pending, running and finished side by side.
            page.goto(server.url + "/#/tasks")
            page.wait_for_timeout(800)
            server.enqueue("generate_report", {"kind": "weekly", "steps": 6, "step_seconds": 0.8}, queue="reports")
            server.enqueue("send_email", {"to": "ops@example.com"}, queue="emails", schedule_in=900)
            burst = [{"type": rnd_type(i), "payload": {"to": f"burst{i}@example.com", "key": f"b/{i}.png"},
                      "queue": "emails" if rnd_type(i) == "send_email" else "media", "priority": i % 10}
                     for i in range(40)]
            server.api("POST", "/api/tasks/batch", json={"tasks": burst})
            page.wait_for_timeout(1300)
            # A few rows ticked: the bulk actions bar.
            for box in page.locator("#tasks-table input.row-select").all()[2:5]:
                box.check()
            page.screenshot(path=str(out / "tasks.png"))

            for name, route in [("queues", "#/queues"), ("workers", "#/workers"), ("dead-letters", "#/dead"),
                                ("cron", "#/cron"), ("metrics", "#/metrics?minutes=15")]:
                page.goto(server.url + "/" + route)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(out / f"{name}.png"))
            page.goto(server.url + "/#/new")
            page.fill("#nt-type", "send_email")
            page.fill("#nt-queue", "emails")
            page.select_option("#nt-priority", "7")
            page.fill("#nt-delay", "30")
            page.fill("#nt-payload", '{\n  "to": "ada@example.com",\n  "template": "welcome",\n  "vars": {"name": "Ada"}\n}')
            page.locator("details.advanced summary").click()
            page.fill("#nt-expires", "3600")
            page.fill("#nt-unique", "welcome:ada")
            page.fill("#nt-webhook", "https://hooks.example.com/nexq")
            page.evaluate("document.activeElement.blur()")
            page.wait_for_timeout(300)
            page.screenshot(path=str(out / "new-task.png"), full_page=True)

            # A report caught mid-run shows the progress bar and live status.
            report = server.enqueue("generate_report", {"kind": "monthly", "month": "2025-11", "steps": 10,
                                                        "step_seconds": 0.6}, queue="reports")["id"]
            page.goto(server.url + f"/#/tasks/{report}")
            page.wait_for_timeout(3800)
            page.screenshot(path=str(out / "task.png"), full_page=True)
            dead = server.api("GET", "/api/dead?limit=1")["tasks"]
            if dead:
                page.goto(server.url + f"/#/tasks/{dead[0]['id']}")
                page.wait_for_timeout(1200)
                page.locator("details.tb summary").first.click()
                page.screenshot(path=str(out / "task-dead.png"), full_page=True)
            browser.close()
    finally:
        server.cleanup()
    for f in sorted(out.glob("*.png")):
        print(f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}  {os.path.getsize(f) // 1024} KiB")


if __name__ == "__main__":
    main()
