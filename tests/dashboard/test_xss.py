"""Values from tasks are shown as text, never run.

Every payload below would set ``window.__xss`` or open a dialog if the
dashboard ever parsed task data as HTML (or as a URL, template or script).
The page runs with the Content-Security-Policy *bypassed*, so the test
proves the dashboard's own rendering is safe, not merely that the CSP
header blocks inline handlers; a canary at the end shows that an injected
handler would indeed have run in this page.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from .helpers import Server, new_page, wait_shown, wait_stats_events

pytestmark = pytest.mark.slow

M = "window.__xss=1"
PAYLOADS = [
    f"<script>{M}</script>",
    f"<img src=x onerror={M}>",
    '<img src=x onerror="alert(1)">',
    f"<svg onload={M}>",
    "<svg/onload=alert(1)>",
    f"<img/src/onerror={M}>",
    f"<body onload={M}>",
    '<iframe src="javascript:parent.__xss=1"></iframe>',
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    f'"><script>{M}</script>',
    f"'><img src=x onerror={M}>",
    f"</pre><script>{M}</script>",
    f"</textarea><script>{M}</script>",
    f"</title><script>{M}</script>",
    f"--><script>{M}</script><!--",
    f'<a href="javascript:{M}">click</a>',
    f"javascript:{M}",
    f"<details open ontoggle={M}>",
    f"<input autofocus onfocus={M}>",
    f"<select autofocus onfocus={M}></select>",
    f"<video><source onerror={M}></video>",
    f"<audio src=x onerror={M}>",
    f'<object data="javascript:{M}"></object>',
    f'<embed src="javascript:{M}">',
    f"<math><mtext><table><mglyph><style><img src=x onerror={M}>",
    f'<noscript><p title="</noscript><img src=x onerror={M}>">',
    f"<style>@import 'javascript:{M}';</style>",
    f"<marquee onstart={M}>x</marquee>",
    f"<form><button formaction=javascript:{M}>x</button></form>",
    f'<meta http-equiv="refresh" content="0;url=javascript:{M}">',
    f'<base href="javascript:{M}//">',
    "<img src=x onerror=&#119;indow.__xss=1>",
    "\\u003cimg src=x onerror=window.__xss=1\\u003e",
    "{{constructor.constructor('window.__xss=1')()}}",
    "${window.__xss=1}",
    f"<svg><animate onbegin={M} attributeName=x dur=1s>",
    f'<div style="background:url(javascript:{M})">x</div>',
    f"<img src=x onerror={M}>\u202e<b>rtl</b>",
]
QUEUE_OK = re.compile(r"^[^\s\u001c-\u001f\u0085\ufeff:|,*/?#%]{1,100}$")  # the API's queue-name rule

SCAN = """() => {
  const URL_ATTRS = ['href', 'src', 'action', 'formaction', 'data', 'srcdoc', 'xlink:href', 'poster', 'background'];
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) bad.push(`${el.tagName} ${a.name}`);
      if (URL_ATTRS.includes(a.name) && /^\\s*javascript:/i.test(a.value)) bad.push(`${el.tagName} ${a.name}=${a.value}`);
    }
  }
  const foreign = 'iframe, object, embed, style, base, meta[http-equiv], video, audio, marquee, math, svg, noscript, body *:not(script) > script, form button[formaction]';
  for (const el of document.querySelectorAll(foreign)) bad.push(`element ${el.tagName}`);
  const scripts = [...document.scripts].map((s) => s.getAttribute('src'));
  if (scripts.join() !== '/static/app.js') bad.push(`scripts ${scripts}`);
  const imgs = [...document.images].filter((i) => !i.closest('.brand'));
  if (imgs.length) bad.push(`img ${imgs.length}`);
  if (window.__xss !== undefined) bad.push(`__xss=${window.__xss}`);
  return bad;
}"""

CHECK_TASK = """([id, type, message, payloadNeedle]) => {
  const title = document.querySelector('.task-title');
  const id_ = document.querySelector('#task-id');
  const err = document.querySelector('.error-message');
  const pre = document.querySelector('pre.json');
  const out = [];
  if (!title || title.textContent !== type) out.push(`title ${title && title.textContent}`);
  if (!id_ || id_.textContent !== id) out.push('id');
  if (message !== null && (!err || !err.textContent.includes(message))) out.push(`error ${err && err.textContent}`);
  if (!pre || !pre.textContent.includes(JSON.stringify(payloadNeedle))) out.push('payload');  // shown as JSON
  return out;
}"""


def go(page: Any, route: str) -> None:
    page.evaluate("r => { location.hash = r; }", route)


def test_task_values_are_displayed_never_executed(server: Server, browser: Any) -> None:
    assert len(PAYLOADS) >= 30
    tasks: list[dict[str, Any]] = []
    for p in PAYLOADS:
        tasks.append({"type": "fail_with", "payload": {"message": p, p: [p, {"nested": p}]},
                      "queue": p if QUEUE_OK.match(p) else "xss", "unique_key": p, "max_retries": 0})
        # No handler has this name: it dies with UnknownTaskType naming it.
        tasks.append({"type": p, "payload": p, "queue": "xss-types", "max_retries": 0})
    tasks.append({"type": "noop", "payload": {p: p for p in PAYLOADS}, "queue": "xss"})
    ids = [t["id"] for t in server.api("POST", "/api/tasks/batch", json={"tasks": tasks})]
    fail_ids = list(zip(ids[0:-1:2], PAYLOADS))
    type_ids = list(zip(ids[1:-1:2], PAYLOADS))
    echo = ids[-1]
    for tid, _ in fail_ids + type_ids:
        server.wait_status(tid, "dead")
    server.wait_status(echo, "succeeded")
    assert any(QUEUE_OK.match(p) for p in PAYLOADS)

    ctx, page, watch = new_page(browser, bypass_csp=True)
    try:
        page.goto(server.url + "/")
        expect(page.locator("#conn")).to_have_text("live")
        expect(page.locator(".depth tbody tr").first).to_be_visible()
        wait_stats_events(page, 2)  # live updates re-render the overview
        assert page.evaluate(SCAN) == []

        go(page, "#/tasks?limit=200")
        rows = page.locator("#tasks-table tbody tr[data-id]")
        expect(rows).to_have_count(2 * len(PAYLOADS) + 1)
        shown_types = set(page.locator("#tasks-table td.type-cell").all_text_contents())
        assert set(PAYLOADS) <= shown_types
        shown_queues = set(page.locator("#tasks-table td:nth-child(4)").all_text_contents())  # after the tick box
        assert {p for p in PAYLOADS if QUEUE_OK.match(p)} <= shown_queues
        assert page.evaluate(SCAN) == []

        for route in ("#/queues", "#/nodes", "#/dead", "#/workers", "#/cron", "#/metrics"):
            go(page, route)
            wait_shown(page, route)
            assert page.evaluate(SCAN) == [], route
        go(page, "#/queues")
        expect(page.locator("#queues-table tbody tr").first).to_be_visible()
        assert {p for p in PAYLOADS if QUEUE_OK.match(p)} <= set(
            page.locator("#queues-table .queue-name").all_text_contents())
        go(page, "#/nodes")
        expect(page.locator("#nodes tbody tr[data-queue]").first).to_be_visible()
        assert {p for p in PAYLOADS if QUEUE_OK.match(p)} <= set(
            page.locator("#nodes .queue-name").all_text_contents())
        assert page.evaluate(SCAN) == []
        go(page, "#/dead")
        expect(page.locator("#dead-table tbody tr[data-id]")).to_have_count(min(50, 2 * len(PAYLOADS)))
        messages = " ".join(page.locator("#dead-table .error-cell").all_text_contents())
        assert all(p in messages for p in PAYLOADS[-10:])  # the newest 50 hold these

        for tid, p in fail_ids:
            go(page, f"#/tasks/{tid}")
            expect(page.locator("#task-id")).to_have_text(tid)
            expect(page.locator(".task-status .badge")).to_have_text("dead")
            assert page.evaluate(CHECK_TASK, [tid, "fail_with", p, p]) == [], p
            expect(page.locator(".progress-msg")).to_have_text(p)
            expect(page.locator(".facts")).to_contain_text(p)  # unique key (and maybe the queue)
            page.locator("#attempts details.tb summary").first.click()  # open the traceback
            expect(page.locator("#attempts pre.traceback").first).to_contain_text(p)
            assert page.evaluate(SCAN) == [], p
        for tid, p in type_ids:
            go(page, f"#/tasks/{tid}")
            expect(page.locator("#task-id")).to_have_text(tid)
            expect(page.locator(".task-status .badge")).to_have_text("dead")
            assert page.evaluate(CHECK_TASK, [tid, p, "no handler is registered", p]) == [], p
            assert page.evaluate(SCAN) == [], p
        go(page, f"#/tasks/{echo}")
        expect(page.locator(".task-status .badge")).to_have_text("succeeded")
        result = page.locator("pre.json").nth(1).text_content()
        assert result is not None and all(json.dumps(p, ensure_ascii=False) in result for p in PAYLOADS)
        assert page.evaluate(SCAN) == []

        # The form: a hostile type and payload typed by hand, shown as text too.
        go(page, "#/new")
        page.fill("#nt-type", PAYLOADS[1])
        page.fill("#nt-payload", '{"html": "<script>window.__xss=1</script>"}')
        page.locator("details.advanced summary").click()
        page.fill("#nt-retries", "0")  # dead at its first attempt, with an error naming the type
        page.click("#nt-submit")
        expect(page.locator(".task-title")).to_have_text(PAYLOADS[1])
        expect(page.locator("pre.json").first).to_contain_text("<script>window.__xss=1</script>")
        # No handler has that name: the page follows the task to dead and shows the error.
        expect(page.locator(".task-status .badge")).to_have_text("dead")
        expect(page.locator(".error-message")).to_contain_text(PAYLOADS[1])
        assert page.evaluate(SCAN) == []

        assert watch.dialogs == []
        assert page.evaluate("window.__xss") is None
        # The canary: in this page (CSP bypassed) injected markup does run, so
        # the checks above would have caught a dashboard that injected it.
        page.evaluate("document.body.insertAdjacentHTML('beforeend', '<img id=canary src=x onerror=window.__canary=1>')")
        page.wait_for_function("window.__canary === 1")
    finally:
        ctx.close()
    assert not watch.errors
