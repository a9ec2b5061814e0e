"""A nexq server and a headless Chromium for the dashboard tests."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.runtime.procs import spawn, stop, wait_http
from tests.servers import free_port

CHROMIUM = os.environ.get("NEXQ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
APP = "tests.dashboard.dash_app:app"
TIMEOUT_MS = 10_000  # how long any Playwright wait or expect on our pages may take


class Server:
    """A `nexq run` child process on a free port with its own data dir."""

    def __init__(self, *extra: str, token: str | None = None, port: int | None = None,
                 data_dir: str | None = None) -> None:
        self.extra = extra
        self.token = token
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="nexq-dash-")
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        args = ["run", "--port", str(self.port), "--data-dir", self.data_dir, "--app", APP,
                "--log-level", "warning", *self.extra]
        if self.token:
            args += ["--api-token", self.token]
        self.proc = spawn(*args)
        wait_http(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc, limit=15)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def api(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        r = httpx.request(method, self.url + path, headers=headers, timeout=10, **kw)
        r.raise_for_status()
        return r.json()

    def enqueue(self, type: str, payload: Any = None, **options: Any) -> dict[str, Any]:
        return self.api("POST", "/api/tasks", json={"type": type, "payload": payload, **options})

    def wait_status(self, task_id: str, *statuses: str, limit: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while True:
            task = self.api("GET", f"/api/tasks/{task_id}")
            if task["status"] in statuses:
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} is {task['status']}, not {statuses}")
            time.sleep(0.05)


@contextmanager
def nexq_server(*extra: str, token: str | None = None) -> Iterator[Server]:
    server = Server(*extra, token=token)
    try:
        yield server.start()
    finally:
        server.cleanup()


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class Watch:
    """What a page did that a test may want to assert never happened."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []  # uncaught page errors
        self.console: list[str] = []  # console errors (CSP violations land here)

    def attach(self, page: Any) -> None:
        def on_dialog(d: Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)


def new_page(browser: Any, **context_options: Any) -> tuple[Any, Any, Watch]:
    """A page in a fresh browser context (closed by the caller) and the Watch
    recording its dialogs and errors."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, **context_options)
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    watch = Watch()
    watch.attach(page)
    return ctx, page, watch


# What each page shows once its data has been fetched and drawn (for servers
# with something on every page: a worker, cron entries, a dead task).
SHOWN = {
    "#/": ".depth tbody tr",
    "#/tasks": "#tasks-table tbody tr[data-id]",
    "#/queues": "#queues-table tbody tr[data-queue]",
    "#/workers": "#workers-table tbody tr[data-worker]",
    "#/nodes": "#nodes section.node",
    "#/dead": "#dead-table tbody tr[data-id]",
    "#/cron": "#cron-table tbody tr[data-cron]",
    "#/types": "#types-table tbody tr[data-type]",
    "#/metrics": "#metrics-table tbody tr[data-type]",
    "#/new": "#nt-submit",
}


def wait_shown(page: Any, route: str) -> None:
    """Return once ``route`` (a hash route, or ``#/tasks/<id>``) shows its data;
    raises after the page's default timeout."""
    path = route.split("?")[0]
    selector = ".task-status .badge" if path.startswith("#/tasks/") else SHOWN[path]
    page.locator(selector).first.wait_for(state="visible")


def wait_stats_events(page: Any, count: int = 2) -> None:
    """Return once the overview has drawn ``count`` more stats events: its
    server-uptime line changes with each (they come once a second)."""
    from playwright.sync_api import expect

    uptime = page.locator("xpath=//dt[normalize-space()='Server uptime']/following-sibling::dd[1]")
    for _ in range(count):
        expect(uptime).not_to_have_text(uptime.text_content() or "")
