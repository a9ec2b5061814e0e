"""The dashboard in a real browser against a real `nexq run`."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.runtime.procs import spawn

from .helpers import APP, Server, new_page, nexq_server, wait_shown

pytestmark = pytest.mark.slow

ROUTES = ["#/", "#/tasks", "#/queues", "#/workers", "#/nodes", "#/dead", "#/cron", "#/types", "#/new"]


def badge(page: Any) -> Any:
    return page.locator(".task-status .badge")


def confirm(page: Any, label: str) -> None:
    page.locator("dialog.modal").get_by_role("button", name=label).click()


def test_overview_shows_live_counts_and_chart(server: Server, page: Any) -> None:
    ids = [server.enqueue("noop", {"n": i})["id"] for i in range(3)]
    for i in ids:
        server.wait_status(i, "succeeded")
    server.enqueue("noop", None, schedule_in=600, queue="later")
    page.goto(server.url + "/")
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator('.card[data-status="succeeded"] .card-value')).to_have_text("3")
    expect(page.locator('.card[data-status="scheduled"] .card-value')).to_have_text("1")
    # Counts follow the stream without a reload.
    page.evaluate("window.__same = 1")
    server.enqueue("noop", {"n": 99})
    expect(page.locator('.card[data-status="succeeded"] .card-value')).to_have_text("4")
    assert page.evaluate("window.__same") == 1
    # The per-second chart has drawn once it has two samples.
    expect(page.locator(".chart-note")).to_be_hidden()
    assert page.locator("#chart-live").evaluate("c => c.width > 0 && c.height > 0")
    expect(page.locator(".depth tbody tr")).to_have_count(2)  # default, later
    expect(page.get_by_text("healthy")).to_be_visible()
    expect(page.locator(".stat-link .big")).to_have_text("1")
    # Each page renders without errors.
    for route in ROUTES[1:]:
        page.goto(server.url + "/" + route)
        expect(page.locator("main h1")).to_be_visible()
        expect(page.locator(".error-box:visible")).to_have_count(0)


def test_new_task_form_validates_and_task_reaches_succeeded(server: Server, page: Any) -> None:
    page.goto(server.url + "/#/new")
    page.evaluate("window.__same = 1")
    page.fill("#nt-type", "sleep")
    page.fill("#nt-payload", '{"seconds": 0.8,')
    expect(page.locator("#nt-payload-error")).to_be_visible()
    expect(page.locator("#payload-status")).to_have_text("Not valid JSON.")
    expect(page.locator("#nt-submit")).to_be_disabled()
    page.fill("#nt-payload", '{"seconds": 0.8}')
    expect(page.locator("#nt-payload-error")).to_be_hidden()
    page.fill("#nt-queue", "bad queue")
    expect(page.locator("#nt-queue-error")).to_be_visible()
    page.fill("#nt-queue", "forms")
    page.select_option("#nt-priority", "9")
    expect(page.locator("#nt-submit")).to_be_enabled()
    page.click("#nt-submit")
    expect(page).to_have_url(re.compile(r"#/tasks/[0-9a-f]+$"))
    task_id = page.url.rsplit("/", 1)[1]
    # Live: the page follows the task to its end without a reload.
    expect(badge(page)).to_have_text("succeeded", timeout=15_000)
    assert page.evaluate("window.__same") == 1
    expect(page.locator("#attempts .badge")).to_have_text("succeeded")
    expect(page.locator(".progress-text")).to_have_text("100 %")
    task = server.api("GET", f"/api/tasks/{task_id}")
    assert (task["type"], task["queue"], task["priority"], task["payload"]) == ("sleep", "forms", 9, {"seconds": 0.8})
    assert task["status"] == "succeeded"


def test_server_side_rejection_is_shown(server: Server, page: Any) -> None:
    page.goto(server.url + "/#/new")
    page.fill("#nt-type", "noop")
    page.fill("#nt-payload", '"x"')
    page.locator("details.advanced summary").click()
    # Longer than the API allows (maxlength only limits typing): the server says no.
    page.locator("#nt-unique").evaluate("el => { el.removeAttribute('maxlength'); }")
    page.fill("#nt-unique", "k" * 1025)
    page.click("#nt-submit")
    expect(page.locator(".task-form .error-box")).to_contain_text("unique_key")
    expect(page).to_have_url(re.compile(r"#/new$"))


def test_cancel_retry_and_delete_a_scheduled_task(server: Server, page: Any) -> None:
    tid = server.enqueue("noop", {"later": True}, schedule_in=3600)["id"]
    page.goto(server.url + f"/#/tasks/{tid}")
    expect(badge(page)).to_have_text("scheduled")
    expect(page.locator(".facts")).to_contain_text("Scheduled for")
    page.click("#btn-cancel")
    confirm(page, "Cancel task")
    expect(badge(page)).to_have_text("cancelled")
    assert server.api("GET", f"/api/tasks/{tid}")["status"] == "cancelled"
    expect(page.locator("#btn-cancel")).to_have_count(0)
    page.click("#btn-retry")
    expect(badge(page)).to_have_text("succeeded")
    page.click("#btn-delete")
    confirm(page, "Delete")
    expect(page).to_have_url(re.compile(r"#/tasks$"))
    with pytest.raises(httpx.HTTPStatusError):
        server.api("GET", f"/api/tasks/{tid}")


def test_task_table_filters_search_and_paging(server: Server, page: Any) -> None:
    alpha = [server.enqueue("noop", {"i": i}, queue="alpha")["id"] for i in range(3)]
    beta = [server.enqueue("fail_with", {"message": f"boom {i}"}, queue="beta", max_retries=0)["id"]
            for i in range(2)]
    later = server.enqueue("noop", None, queue="alpha", schedule_in=900)["id"]
    for i in alpha:
        server.wait_status(i, "succeeded")
    for i in beta:
        server.wait_status(i, "dead")
    rows = page.locator("#tasks-table tbody tr[data-id]")
    page.goto(server.url + "/#/tasks")
    expect(rows).to_have_count(6)

    page.select_option("#f-status", "dead")
    expect(page).to_have_url(re.compile(r"status=dead"))
    expect(rows).to_have_count(2)
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.status)")) == {"dead"}
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.id)")) == set(beta)

    page.goto(server.url + "/#/tasks")
    page.fill("#f-type", "noop")
    page.press("#f-type", "Enter")
    expect(rows).to_have_count(4)
    page.select_option("#f-queue", "alpha")
    expect(page).to_have_url(re.compile(r"type=noop.*queue=alpha|queue=alpha.*type=noop"))
    expect(rows).to_have_count(4)
    page.select_option("#f-status", "scheduled")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", later)
    page.select_option("#f-queue", "beta")
    expect(page.locator("#tasks-table tr.empty")).to_have_text("No task matches these filters.")

    # Search by id opens the task; an unknown id says so.
    page.goto(server.url + "/#/tasks")
    page.fill("#f-id", "nope-not-a-task")
    page.press("#f-id", "Enter")
    expect(page.locator(".id-box .form-error")).to_contain_text("No task with id")
    page.fill("#f-id", beta[0])
    page.press("#f-id", "Enter")
    expect(page).to_have_url(re.compile(f"#/tasks/{beta[0]}$"))
    expect(page.locator(".error-message")).to_have_text("boom 0")

    # Paging by next_cursor: 26 more tasks, 25 a page.
    server.api("POST", "/api/tasks/batch", json={"tasks": [{"type": "noop", "payload": i} for i in range(26)]})
    page.goto(server.url + "/#/tasks?limit=25")
    expect(rows).to_have_count(25)
    page.click("#next-page")
    expect(rows).to_have_count(7)
    page.get_by_role("link", name="‹ Newer").click()
    expect(rows).to_have_count(25)


def test_pause_and_resume_a_queue(server: Server, page: Any) -> None:
    first = server.enqueue("noop", 1, queue="mailq")["id"]
    server.wait_status(first, "succeeded")
    page.goto(server.url + "/#/queues")
    row = page.locator('#queues-table tr[data-queue="mailq"]')
    expect(row).to_be_visible()
    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".badge-paused")).to_be_visible()
    paused = {q["name"]: q["paused"] for q in server.api("GET", "/api/queues")["queues"]}
    assert paused["mailq"] is True
    held = server.enqueue("noop", 2, queue="mailq")["id"]
    expect(row.locator("td").nth(1)).to_have_text("1")  # pending, live from the stream
    assert server.api("GET", f"/api/tasks/{held}")["status"] == "pending"
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".badge-paused")).to_have_count(0)
    server.wait_status(held, "succeeded")
    expect(row.locator("td").nth(1)).to_have_text("0")


def test_dead_letters_requeue_and_purge(server: Server, page: Any) -> None:
    ids = [server.enqueue("fail_with", {"message": f"dead {i}"}, queue="dq", max_retries=0)["id"] for i in range(3)]
    for i in ids:
        server.wait_status(i, "dead")
    page.goto(server.url + "/#/dead")
    rows = page.locator("#dead-table tbody tr[data-id]")
    expect(rows).to_have_count(3)
    expect(page.locator("#dead-table")).to_contain_text("ValueError")
    page.locator(f'#dead-table tr[data-id="{ids[0]}"]').get_by_role("button", name="Requeue").click()
    # It fails again (same handler), with a second attempt recorded.
    server.wait_status(ids[0], "dead")
    assert len(server.api("GET", f"/api/tasks/{ids[0]}")["attempts"]) == 2
    page.click("#dead-requeue-all")
    confirm(page, "Requeue all")
    expect(page.locator(".toast", has_text="3 task(s) requeued")).to_be_visible()
    for i in ids:
        server.wait_status(i, "dead")
    page.click("#dead-purge")
    confirm(page, "Purge")
    expect(page.locator("#dead-table tr.empty")).to_have_text("No dead letters.")
    assert server.api("GET", "/api/dead")["tasks"] == []


def test_workers_and_cron_pages(page: Any) -> None:
    # A short lease: workers report what they run with every heartbeat (lease / 3).
    with nexq_server("--lease", "3") as server:
        _workers_and_cron(server, page)


def _workers_and_cron(server: Server, page: Any) -> None:
    page.goto(server.url + "/#/workers")
    row = page.locator("#workers-table tbody tr[data-worker]")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", "live")
    expect(row.locator("td").nth(3)).to_have_text(str(server.proc.pid))
    expect(row).to_contain_text("all queues")
    expect(row).to_contain_text("0 / 10")
    # A running task shows in its worker's row.
    tid = server.enqueue("sleep", {"seconds": 3})["id"]
    expect(row.locator(".running-list")).to_be_visible()
    expect(row).to_contain_text("1 / 10")
    server.wait_status(tid, "succeeded")

    page.goto(server.url + "/#/cron")
    rows = page.locator("#cron-table tbody tr[data-cron]")
    expect(rows).to_have_count(3)
    nightly = page.locator('#cron-table tr[data-cron="nightly-report"]')
    expect(nightly).to_contain_text("0 3 * * *")
    expect(nightly).to_contain_text("never")
    expect(nightly.locator("td").nth(5)).to_contain_text(re.compile(r"in \d"))


def test_phone_width_has_no_horizontal_overflow(server: Server, browser: Any) -> None:
    long_word = "x" * 300
    tid = server.enqueue("fail_with", {"message": long_word, long_word: [long_word]},
                         queue="q" + "w" * 99, max_retries=0)["id"]
    server.wait_status(tid, "dead")
    server.enqueue("noop", None, schedule_in=60)
    ctx, page, watch = new_page(browser, is_mobile=True, has_touch=True)
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        for route in [*ROUTES, f"#/tasks/{tid}"]:
            page.goto(server.url + "/" + route)
            wait_shown(page, route)
            width = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]")
            assert width[0] <= width[2] and width[1] <= width[2], (route, width)
        # The navigation stays reachable: it scrolls within itself.
        page.locator('.sidenav a[data-nav="cron"]').click()
        expect(page).to_have_url(re.compile("#/cron$"))
    finally:
        ctx.close()
    assert not watch.errors


def test_stream_reconnects_after_server_restart(browser: Any) -> None:
    first = Server()
    first.start()
    second = None
    ctx, page, watch = new_page(browser)
    try:
        page.goto(first.url + "/")
        expect(page.locator("#conn")).to_have_text("live")
        first.stop()
        expect(page.locator("#conn")).to_contain_text("reconnecting")
        second = Server(port=first.port, data_dir=first.data_dir)
        second.start()
        expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
        # And the page is fed again.
        second.enqueue("noop", None, schedule_in=300)
        expect(page.locator('.card[data-status="scheduled"] .card-value')).to_have_text("1")
    finally:
        ctx.close()
        if second is not None:
            second.stop()
        first.cleanup()
    assert not watch.errors


def test_token_prompt(browser: Any) -> None:
    with nexq_server(token="s3cret-token") as server:
        server.enqueue("noop", None, schedule_in=300)
        ctx, page, watch = new_page(browser)
        try:
            page.goto(server.url + "/")
            dialog = page.locator("dialog.modal")
            expect(dialog.locator("#token-input")).to_be_visible()
            dialog.locator("#token-input").fill("wrong")
            dialog.get_by_role("button", name="Use token").click()
            expect(dialog).to_contain_text("That token was refused")
            dialog.locator("#token-input").fill("s3cret-token")
            dialog.get_by_role("button", name="Use token").click()
            expect(page.locator("dialog.modal")).to_have_count(0)
            expect(page.locator('.card[data-status="scheduled"] .card-value')).to_have_text("1")
            expect(page.locator("#conn")).to_have_text("live")
            assert page.evaluate("sessionStorage.getItem('nexq.token')") == "s3cret-token"
            assert ctx.cookies() == []
            # Kept for the tab: a reload asks nothing.
            page.reload()
            expect(page.locator('.card[data-status="scheduled"] .card-value')).to_have_text("1")
            expect(page.locator("dialog.modal")).to_have_count(0)
            # Other pages send it too.
            page.goto(server.url + "/#/tasks")
            expect(page.locator("#tasks-table tbody tr[data-id]")).to_have_count(1)
            # Forgetting it asks again; dismissing leaves a way back.
            page.click("#forget-token")
            expect(dialog.locator("#token-input")).to_be_visible()
            assert page.evaluate("sessionStorage.getItem('nexq.token')") is None
            dialog.get_by_role("button", name="Cancel").click()
            expect(page.locator(".error-box")).to_contain_text("API token")
            page.get_by_role("button", name="Enter token").click()
            page.locator("dialog.modal #token-input").fill("s3cret-token")
            page.locator("dialog.modal").get_by_role("button", name="Use token").click()
            expect(page.locator("#tasks-table tbody tr[data-id]")).to_have_count(1)
            expect(page.locator("#conn")).to_have_text("live")
        finally:
            ctx.close()
        assert not watch.errors


def test_live_updates_are_debounced_not_a_polling_storm(server: Server, page: Any) -> None:
    page.goto(server.url + "/#/tasks")
    expect(page.locator("#conn")).to_have_text("live")
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/api/" in r.url and "/api/events" not in r.url else None)
    # 300 tasks in a few seconds: hundreds of task events reach the page.
    started = time.monotonic()
    for _ in range(15):
        made = server.api("POST", "/api/tasks/batch", json={"tasks": [{"type": "noop", "payload": i} for i in range(20)]})
        page.wait_for_timeout(200)  # pacing, not waiting: the events keep coming for ~3 s
    # The refresh after the last batch shows it (newest first).
    expect(page.locator(f'#tasks-table tr[data-id="{made[-1]["id"]}"]')).to_have_count(1)
    elapsed = time.monotonic() - started
    assert 1 <= len(calls) <= elapsed + 1, (elapsed, calls)  # at most one refresh a second
    expect(page.locator("#tasks-table tbody tr[data-id]")).to_have_count(50)
    # The overview is fed by the stream alone.
    page.goto(server.url + "/#/")
    expect(page.locator('.card[data-status="succeeded"] .card-value')).to_have_text("300")
    calls.clear()
    server.api("POST", "/api/tasks/batch", json={"tasks": [{"type": "noop", "payload": i} for i in range(20)]})
    expect(page.locator('.card[data-status="succeeded"] .card-value')).to_have_text("320")
    assert calls == []


def test_stale_worker_is_marked(resp_url: str, page: Any) -> None:
    """A worker killed without deregistering turns stale after two missed beats."""
    ns = f"dash{uuid.uuid4().hex[:8]}"
    with nexq_server("--store", resp_url, "--namespace", ns, "--no-worker") as server:
        worker = spawn("worker", "--store", resp_url, "--namespace", ns, "--lease", "3", "--app", APP)
        try:
            page.goto(server.url + "/#/workers")
            row = page.locator("#workers-table tbody tr[data-worker]")
            expect(row).to_have_count(1, timeout=15_000)
            expect(row).to_have_attribute("data-state", "live")
            worker.kill()
            worker.wait()
            expect(row).to_have_attribute("data-state", "stale")
            expect(row).to_have_class(re.compile("row-stale"))
            expect(row.locator(".badge")).to_have_text("stale")
            page.goto(server.url + "/#/")
            expect(page.locator(".worker-summary")).to_contain_text("1 stale")
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def test_task_page_links_parents_and_children(server, page) -> None:  # type: ignore[no-untyped-def]
    parent = server.enqueue("noop", None, schedule_in=900)["id"]
    child = server.api("POST", "/api/tasks", json={"type": "noop", "depends_on": [parent]})["id"]
    page.goto(f"{server.url}/#/tasks/{child}")
    page.get_by_text("Waits for").wait_for()
    link = page.locator(f'a[href="#/tasks/{parent}"]')
    assert link.count() >= 1
    link.first.click()
    page.get_by_text("Followed by").wait_for()
    assert page.locator(f'a[href="#/tasks/{child}"]').count() >= 1
