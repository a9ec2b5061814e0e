"""Fixtures of the browser tests: one Chromium per session, a fresh page
(context) and a fresh `nexq run` server per test.

Chromium is Debian's (`make test` installs it); playwright's own browser
downloads are never used. Without it the tests skip, except with CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import CHROMIUM, Server, launch, new_page, nexq_server

_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

try:
    from playwright import sync_api
except ImportError:
    if _CI:
        raise  # the test extra installs it: missing in CI is a setup bug
    sync_api = None
    collect_ignore_glob = ["test_*.py"]  # `make test` installs playwright


def _require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        if _CI:
            pytest.fail(f"{CHROMIUM} is required in CI (make test installs Debian's chromium)")
        pytest.skip(f"{CHROMIUM} not installed; run `make test` to install it")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _require_chromium()
    with sync_api.sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def server() -> Iterator[Server]:
    with nexq_server() as s:
        yield s


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx, pg, watch = new_page(browser)
    pg.watch = watch
    yield pg
    ctx.close()
    assert not watch.errors, f"uncaught errors on the page: {watch.errors}"
    assert not any("Content Security Policy" in m for m in watch.console), watch.console
