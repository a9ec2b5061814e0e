"""The Types page and the New task form of a `nexq run --no-worker` without
the app: the types and cron entries come from a separate `nexq worker`."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.runtime.procs import spawn, stop, wait_http
from tests.servers import free_port

pytestmark = pytest.mark.slow

TYPED = "tests.runtime.typed_app:app"  # deliver_mail: queue mail, priority 7, max_retries 0, timeout 12


def test_types_of_a_live_worker_are_listed_and_fill_in_the_new_task_form(resp_url: str, page: Any) -> None:
    ns = f"dash{uuid.uuid4().hex[:8]}"
    store = ["--store", resp_url, "--namespace", ns, "--log-level", "warning"]
    port = free_port()
    server = spawn("run", "--port", str(port), "--no-worker", *store)  # the demo handlers, not deliver_mail
    worker = spawn("worker", *store, "--app", TYPED, "--queues", "mail")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(port)
        page.goto(url + "/#/types")
        row = page.locator('#types-table tr[data-type="deliver_mail"]')
        expect(row).to_be_visible(timeout=15_000)  # listed once the worker registered
        cells = row.locator("td")
        expect(cells.nth(1)).to_have_text("mail")
        expect(cells.nth(2)).to_have_text("7")
        expect(cells.nth(3)).to_have_text("0")
        expect(cells.nth(4)).to_have_text("12 s")
        expect(row).not_to_contain_text("this server")  # served by the worker only
        expect(page.locator('#types-table tr[data-type="send_email"]')).to_contain_text("this server")

        page.goto(url + "/#/cron")
        expect(page.locator('#cron-table tr[data-cron="mail-digest"]')).to_contain_text("deliver_mail")

        page.goto(url + "/#/new")
        page.select_option("#nt-pick", "deliver_mail")
        expect(page.locator("#nt-type")).to_have_value("deliver_mail")
        expect(page.locator("#nt-queue")).to_have_value("mail")
        expect(page.locator("#nt-priority")).to_have_value("7")
        expect(page.locator("#nt-retries")).to_have_value("0")
        expect(page.locator("#nt-timeout")).to_have_value("12")
        # Another type: the fields left at the defaults follow it; an edited one stays.
        page.fill("#nt-timeout", "30")
        page.fill("#nt-type", "noop")  # a demo handler of this server: max_retries 0, queue default
        expect(page.locator("#nt-queue")).to_have_value("default")
        expect(page.locator("#nt-priority")).to_have_value("5")
        expect(page.locator("#nt-timeout")).to_have_value("30")
        expect(page.locator("#nt-pick")).to_have_value("noop")
        # Back to deliver_mail by typing: enqueued with its defaults, run by the worker of 'mail'.
        page.fill("#nt-type", "deliver_mail")
        expect(page.locator("#nt-queue")).to_have_value("mail")
        page.fill("#nt-payload", '{"to": "ops"}')
        page.click("#nt-submit")
        expect(page).to_have_url(re.compile(r"#/tasks/[0-9a-f]+$"))
        expect(page.locator(".task-status .badge")).to_have_text("succeeded", timeout=15_000)
        task = httpx.get(f"{url}/api/tasks/{page.url.rsplit('/', 1)[1]}", timeout=10).json()
        assert (task["queue"], task["priority"], task["max_retries"], task["timeout"]) == ("mail", 7, 0, 30)
    finally:
        stop(worker)
        stop(server)
