"""What an operator of Flower, RQ Dashboard or Sidekiq expects of the
dashboard, in a real browser against a real `nexq run`: bulk actions,
server-side search, running a succeeded task again, per-type metrics, the
New task form's other options, pausing a queue in advance and a phone."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from .helpers import Server, new_page, wait_shown

pytestmark = pytest.mark.slow

ROWS = "#tasks-table tbody tr[data-id]"


def confirm(page: Any, label: str) -> None:
    page.locator("dialog.modal").get_by_role("button", name=label).click()


def statuses(server: Server, ids: list[str]) -> list[str]:
    return [server.api("GET", f"/api/tasks/{i}")["status"] for i in ids]


def test_bulk_cancel_ticked_rows_then_delete_every_match(server: Server, page: Any) -> None:
    ids = [server.enqueue("noop", {"i": i}, queue="bulkq", schedule_in=3600)["id"] for i in range(4)]
    other = server.enqueue("noop", None, queue="keepq", schedule_in=3600)["id"]
    page.goto(server.url + "/#/tasks?queue=bulkq")
    expect(page.locator(ROWS)).to_have_count(4)
    expect(page.locator("#bulk-bar")).to_be_hidden()
    for tid in ids[:2]:
        page.locator(f'#tasks-table tr[data-id="{tid}"] input.row-select').check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    expect(page.locator("#bulk-all")).to_be_hidden()  # offered once the whole page is ticked
    page.click("#bulk-cancel")
    confirm(page, "Cancel tasks")
    expect(page.locator(".toast", has_text="2 tasks cancelled")).to_be_visible()
    expect(page.locator(f"{ROWS}[data-status=cancelled]")).to_have_count(2)
    assert statuses(server, ids) == ["cancelled", "cancelled", "scheduled", "scheduled"]
    expect(page.locator("#bulk-bar")).to_be_hidden()

    # Every task the filter matches: one call per 10,000, the page reloads.
    page.check("#select-page")
    expect(page.locator("#bulk-count")).to_have_text("4 selected")
    page.click("#bulk-all")
    expect(page.locator("#bulk-count")).to_have_text("Every task matching these filters is selected.")
    page.click("#bulk-delete")
    confirm(page, "Delete tasks")
    expect(page.locator(".toast", has_text="4 tasks deleted")).to_be_visible()
    expect(page.locator("#tasks-table tr.empty")).to_be_visible()
    assert statuses(server, [other]) == ["scheduled"]

    # Without a filter there is no "every match" (the API wants a condition).
    page.goto(server.url + "/#/tasks")
    expect(page.locator(ROWS)).to_have_count(1)
    page.check("#select-page")
    expect(page.locator("#bulk-count")).to_have_text("1 selected")
    expect(page.locator("#bulk-all")).to_be_hidden()
    page.click("#bulk-retry")
    confirm(page, "Retry tasks")
    expect(page.locator(".toast", has_text="0 tasks queued again; 1 not")).to_contain_text("has not ended")


def test_search_by_text_id_prefix_and_time_runs_on_the_server(server: Server, page: Any) -> None:
    ada = server.enqueue("noop", {"to": "ada@example.com"}, queue="mailq", schedule_in=3600)["id"]
    bob = server.enqueue("noop", {"to": "bob@example.com"}, queue="mailq", schedule_in=3600)["id"]
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/tasks?" in r.url else None)
    page.goto(server.url + "/#/tasks")
    expect(page.locator(ROWS)).to_have_count(2)
    page.fill("#f-search", "ADA@example")
    page.press("#f-search", "Enter")
    expect(page).to_have_url(re.compile(r"search=ADA%40example"))
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.locator(ROWS)).to_have_attribute("data-id", ada)
    assert any("search=ADA%40example" in u for u in asked)  # filtered by the server

    page.goto(server.url + "/#/tasks")
    page.fill("#f-prefix", bob[:-2])
    page.press("#f-prefix", "Enter")
    expect(page.locator(ROWS)).to_have_count(1)
    expect(page.locator(ROWS)).to_have_attribute("data-id", bob)

    page.goto(server.url + "/#/tasks")
    soon = (datetime.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page.fill("#f-after", soon)
    page.locator("#f-after").dispatch_event("change")
    expect(page.locator("#tasks-table tr.empty")).to_have_text("No task matches these filters.")
    page.fill("#f-after", "")
    page.fill("#f-before", soon)
    page.locator("#f-before").dispatch_event("change")
    expect(page).to_have_url(re.compile(r"before="))
    expect(page.locator(ROWS)).to_have_count(2)


def test_a_succeeded_task_runs_again_from_its_page(server: Server, page: Any) -> None:
    tid = server.enqueue("noop", {"again": True})["id"]
    server.wait_status(tid, "succeeded")
    page.goto(server.url + f"/#/tasks/{tid}")
    expect(page.locator(".task-status .badge")).to_have_text("succeeded")
    expect(page.locator("#btn-retry")).to_have_text("Run again")
    page.click("#btn-retry")
    confirm(page, "Run again")
    expect(page.locator("#attempts > li")).to_have_count(2)
    expect(page.locator(".task-status .badge")).to_have_text("succeeded")
    assert [a["outcome"] for a in server.api("GET", f"/api/tasks/{tid}")["attempts"]] == ["succeeded"] * 2


def test_metrics_page_shows_each_types_outcomes_runtime_and_wait(server: Server, page: Any) -> None:
    ok = [server.enqueue("sleep", {"seconds": 0.2})["id"] for _ in range(3)]
    bad = [server.enqueue("fail_with", {"message": "no"}, max_retries=0)["id"] for _ in range(2)]
    for tid in ok:
        server.wait_status(tid, "succeeded")
    for tid in bad:
        server.wait_status(tid, "dead")
    page.goto(server.url + "/#/metrics")
    wait_shown(page, "#/metrics")
    sleep_row = page.locator('#metrics-table tr[data-type="sleep"]')
    cells = sleep_row.locator("td")
    expect(cells.nth(1)).to_have_text("3")
    expect(cells.nth(2)).to_have_text("100 %")
    runtime_p50 = cells.nth(4).text_content() or ""
    assert re.fullmatch(r"\d+ ms", runtime_p50) and 150 <= int(runtime_p50.split()[0]) < 2000, runtime_p50
    failing = page.locator('#metrics-table tr[data-type="fail_with"] td')
    expect(failing.nth(2)).to_have_text("0 %")
    expect(failing.nth(3)).to_have_text("2")
    expect(page.locator("#metrics-note")).to_have_text("All 5 tasks created in the window.")
    # The busiest type is charted first; a link charts another.
    expect(page.locator("#metrics-chart-title")).to_have_text("sleep: tasks")
    assert page.locator("#metrics-counts").evaluate("c => c.width > 0 && c.height > 0")
    page.locator('#metrics-table a', has_text="fail_with").click()
    expect(page).to_have_url(re.compile(r"#/metrics\?type=fail_with"))
    expect(page.locator("#metrics-chart-title")).to_have_text("fail_with: tasks")
    expect(page.locator('#metrics-table tr[data-type="fail_with"]')).to_have_class(re.compile("row-chosen"))
    page.select_option("#metrics-window", "15")
    expect(page).to_have_url(re.compile(r"minutes=15"))
    expect(page.locator('#metrics-table tr[data-type="sleep"] td').nth(1)).to_have_text("3")


def test_new_task_form_sends_the_other_options(server: Server, page: Any) -> None:
    parent = server.enqueue("noop", None, schedule_in=3600)["id"]
    page.goto(server.url + "/#/new")
    page.fill("#nt-type", "noop")
    page.fill("#nt-payload", '{"x": 1}')
    page.locator("details.advanced summary").click()
    page.fill("#nt-delay", "30")
    later = datetime.now() + timedelta(hours=2)
    page.fill("#nt-run-at", later.strftime("%Y-%m-%dT%H:%M"))
    expect(page.locator("#nt-run-at-error")).to_have_text("Give a delay or a time to run at, not both.")
    page.fill("#nt-delay", "")
    page.fill("#nt-webhook", "ftp://example.com")
    expect(page.locator("#nt-webhook-error")).to_be_visible()
    page.fill("#nt-webhook", "https://example.com/hook")
    page.fill("#nt-expires", "86400")
    page.fill("#nt-unique", "form-key-1")
    page.fill("#nt-depends", f"{parent}\n")
    page.select_option("#nt-on-failure", "run")
    expect(page.locator("#nt-submit")).to_be_enabled()
    started = time.time()
    page.click("#nt-submit")
    expect(page).to_have_url(re.compile(r"#/tasks/[0-9a-f]+$"))
    task = server.api("GET", f"/api/tasks/{page.url.rsplit('/', 1)[1]}")
    assert (task["status"], task["depends_on"], task["on_parent_failure"]) == ("waiting", [parent], "run")
    assert (task["webhook"], task["unique_key"]) == ("https://example.com/hook", "form-key-1")
    assert task["scheduled_at"] == pytest.approx(later.replace(second=0, microsecond=0).timestamp(), abs=1)
    assert started + 86_400 - 5 < task["expires_at"] < time.time() + 86_400 + 5
    expect(page.locator(".facts")).to_contain_text("Waits for")

    # An unknown parent: the server names the field.
    page.goto(server.url + "/#/new")
    page.fill("#nt-type", "noop")
    page.locator("details.advanced summary").click()
    page.fill("#nt-depends", "no-such-task")
    page.click("#nt-submit")
    expect(page.locator(".task-form .error-box")).to_contain_text("depends_on: no task 'no-such-task'")


def test_a_queue_is_paused_in_advance_from_the_queues_page(server: Server, page: Any) -> None:
    page.goto(server.url + "/#/queues")
    page.fill("#pause-name", "nightly")
    page.click("#pause-submit")
    row = page.locator('#queues-table tr[data-queue="nightly"]')
    expect(row.locator(".badge-paused")).to_be_visible()
    assert {q["name"]: q["paused"] for q in server.api("GET", "/api/queues")["queues"]} == {"nightly": True}
    tid = server.enqueue("noop", None, queue="nightly")["id"]
    expect(row.locator("td").nth(1)).to_have_text("1")  # held: pending
    row.get_by_role("button", name="Resume").click()
    server.wait_status(tid, "succeeded")
    page.fill("#pause-name", "bad:name")
    page.click("#pause-submit")
    expect(page.locator("#pause-error")).to_contain_text("name:")


REACHABLE = """el => {
  el.scrollIntoView({block: 'center', inline: 'center'});
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.left >= 0 && r.right <= innerWidth && r.top >= 0 && r.bottom <= innerHeight;
}"""


def test_phone_nav_and_tables_stay_reachable_and_say_they_scroll(server: Server, browser: Any) -> None:
    parents = [server.enqueue("noop", None, schedule_in=3600, queue="phoneq")["id"] for _ in range(3)]
    child = server.enqueue("noop", None, depends_on=parents, queue="phoneq")["id"]
    # Paused first: an idle worker claims a task the moment its push rings it.
    server.api("POST", "/api/queues/held/pause")
    for p in (9, 1, 0):
        server.enqueue("noop", None, schedule_in=0, queue="held", priority=p)
    ctx, page, watch = new_page(browser, is_mobile=True, has_touch=True)
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.goto(server.url + "/#/queues")
        wait_shown(page, "#/queues")
        # Every section is in sight: the navigation wraps, it does not scroll.
        links = page.locator(".sidenav a")
        assert links.count() >= 10
        boxes = links.evaluate_all("as => as.map(a => a.getBoundingClientRect()).map(r => [r.left, r.right])")
        assert all(0 <= left and right <= 390 for left, right in boxes), boxes
        assert page.locator(".sidenav").evaluate("n => n.scrollWidth <= n.clientWidth")
        # A wide table scrolls inside its box, shaded at the hidden edge, with a hint.
        wrap = page.locator("main > .table-wrap").first
        expect(wrap).to_have_class(re.compile(r"\bcan-right\b"))
        expect(wrap.locator(".scroll-hint")).to_be_visible()
        pause = page.locator('#queues-table tr[data-queue="phoneq"]').get_by_role("button", name="Pause")
        assert pause.evaluate(REACHABLE)
        expect(wrap).to_have_class(re.compile(r"\bcan-left\b"))
        pause.click()
        expect(page.locator('#queues-table tr[data-queue="phoneq"] .badge-paused')).to_be_visible()

        page.goto(server.url + "/#/")
        wait_shown(page, "#/")
        for col in ("P1", "P0"):
            head = page.locator(".depth th", has_text=re.compile(f"^{col}$"))
            assert head.evaluate(REACHABLE), col
        held = page.locator(".depth tbody tr", has_text="held").locator("td").nth(10)  # Queue, P9 ... P0
        assert held.evaluate(REACHABLE) and held.text_content() == "1"

        page.goto(server.url + f"/#/tasks/{child}")
        wait_shown(page, f"#/tasks/{child}")
        ids = page.locator(".task-links a")
        expect(ids).to_have_count(3)
        assert ids.evaluate_all("as => as.map(a => a.getClientRects().length)") == [1, 1, 1]
        for route in ("#/tasks", "#/metrics", f"#/tasks/{child}"):
            page.goto(server.url + "/" + route)
            wait_shown(page, route)
            width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
            assert width[0] <= width[1], (route, width)
    finally:
        ctx.close()
    assert not watch.errors
