"""The overview's store panel shows lost keys and admission, live."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from playwright.sync_api import expect

from tests.servers import redis_server

from .helpers import new_page, nexq_server

pytestmark = pytest.mark.slow


def fact(page: Any, term: str) -> Any:
    return page.locator(f"xpath=//dt[normalize-space()='{term}']/following-sibling::dd[1]")


def test_overview_shows_an_eviction_within_a_minute(browser: Any) -> None:
    with redis_server() as srv, nexq_server("--store", srv.url, "--namespace", "dash",
                                            "--store-memory-limit", "64M") as server:
        ctx, page, watch = new_page(browser)
        try:
            page.goto(server.url + "/")
            expect(page.locator("[data-health]")).to_have_text("healthy")
            expect(fact(page, "Evictions")).to_have_text("none detected")
            expect(fact(page, "Admission")).to_contain_text("of 51.2 MiB")  # 64 MiB less 20 % head room
            r = redis.Redis(port=srv.port, protocol=2)
            deadline = time.monotonic() + 20
            while not (canaries := r.keys("dash:canary:*")):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            r.delete(*canaries)  # behind Nexq's back, as an evicting cache would
            expect(page.locator("[data-health]")).to_have_text("degraded", timeout=60_000)
            expect(page.locator(".store-reason")).to_contain_text("evicted keys")
            expect(fact(page, "Evictions")).to_contain_text("canaries lost")
            assert not watch.errors, watch.errors
        finally:
            ctx.close()
