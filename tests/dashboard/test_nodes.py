"""The Nodes page (and the Queues page's node line) against a `nexq run`
on two redis-servers of the test's own."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from nexq.queue.ring import Ring
from tests.servers import redis_server

from .helpers import Server, nexq_server

pytestmark = pytest.mark.slow

CANDIDATES = [f"q{i}" for i in range(64)]


def node_name(redis: Any) -> str:
    return f"127.0.0.1:{redis.port}"


def pick(ring: Ring, node: str, n: int) -> list[str]:
    """The first n candidate queue names the ring places on node."""
    out = [q for q in CANDIDATES if ring.node_for(q) == node][:n]
    assert len(out) == n, (node, out)
    return out


def node_card(page: Any, name: str) -> Any:
    return page.locator(f'#nodes section.node[data-node="{name}"]')


def queue_row(page: Any, node: str, queue: str) -> Any:
    return node_card(page, node).locator(f'tr[data-queue="{queue}"]')


def test_nodes_page_shows_placement_and_an_unreachable_node(page: Any) -> None:
    with redis_server() as a, redis_server() as b:
        names = [node_name(a), node_name(b)]
        ring = Ring(names)
        queues = pick(ring, names[0], 2) + pick(ring, names[1], 2)
        with nexq_server("--store", f"{a.url},{b.url}", "--no-worker") as server:
            # Queue k gets k + 1 tasks, so each row's count is its own.
            for k, q in enumerate(queues):
                for i in range(k + 1):
                    server.enqueue("noop", {"i": i}, queue=q)
            server.enqueue("noop", None, queue=queues[0], schedule_in=900)
            report = server.api("GET", "/api/nodes")["nodes"]
            assert [n["name"] for n in report] == names
            assert sorted(q for n in report for q in n["queues"]) == sorted(queues)

            page.goto(server.url + "/#/nodes")
            expect(page.locator('.sidenav a[data-nav="nodes"]')).to_have_class(re.compile("active"))
            cards = page.locator("#nodes section.node")
            expect(cards).to_have_count(2)
            assert cards.evaluate_all("cs => cs.map(c => c.dataset.node)") == names
            expect(cards.nth(0).locator(".node-name")).to_have_text(names[0])
            expect(cards.nth(1).locator(".node-name")).to_have_text(names[1])
            expect(cards.nth(0).locator(".badge-home")).to_have_text("home")
            expect(cards.nth(1).locator(".badge-home")).to_have_count(0)
            for i, node in enumerate(report):
                card = node_card(page, node["name"])
                expect(card).to_have_attribute("data-reachable", "true")
                expect(card.locator(".badge-reachable")).to_have_text("reachable")
                expect(card.locator('dd[data-fact="latency"]')).to_have_text(re.compile(r"^[\d.]+ ms$"))
                expect(card.locator('dd[data-fact="placed"]')).to_have_text("2")
                expect(card.locator("tbody tr[data-queue]")).to_have_count(len(node["queues"]))
                for q in node["queues"]:
                    cells = queue_row(page, node["name"], q).locator("td")
                    expect(cells.nth(0)).to_have_text(q)
                    expect(cells.nth(1)).to_have_text(str(queues.index(q) + 1))  # pending
                    expect(cells.nth(2)).to_have_text("1" if q == queues[0] else "0")  # scheduled
                    expect(cells.nth(3)).to_have_text("0")  # running
                    assert ring.node_for(q) == node["name"]
            expect(page.locator("#nodes-summary")).to_have_text("2 nodes · 2 reachable · 4 queues placed")

            # The Queues page names each queue's node.
            page.goto(server.url + "/#/queues")
            for q in queues:
                line = page.locator(f'#queues-table tr[data-queue="{q}"] .queue-nodes')
                expect(line).to_have_text(f"on {ring.node_for(q)}")

            # The second node goes away: its card turns unreachable on the next refresh.
            page.goto(server.url + "/#/nodes")
            expect(queue_row(page, names[1], queues[2])).to_be_visible()
            b.stop(kill=True)
            down = node_card(page, names[1])
            expect(down).to_have_attribute("data-reachable", "false")
            expect(down).to_have_class(re.compile("node-unreachable"))
            expect(down.locator(".badge-unreachable")).to_have_text("unreachable")
            expect(down.locator(".badge-unreachable")).to_be_visible()
            expect(down.locator(".node-down")).to_be_visible()
            expect(down.locator("tbody tr[data-queue]")).to_have_count(0)
            expect(page.locator("#nodes-summary")).to_contain_text("1 unreachable")
            up = node_card(page, names[0])
            expect(up).to_have_attribute("data-reachable", "true")
            expect(up.locator(".badge-home")).to_be_visible()
            expect(queue_row(page, names[0], queues[1]).locator("td").nth(1)).to_have_text("2")


def test_a_draining_queue_is_highlighted(page: Any) -> None:
    """Tasks enqueued with one node stay there when a second node takes over
    their queue: that queue drains on the first node."""
    with redis_server() as a, redis_server() as b:
        names = [node_name(a), node_name(b)]
        ring = Ring(names)
        moving = pick(ring, names[1], 1)[0]
        staying = pick(ring, names[0], 1)[0]
        with nexq_server("--store", a.url, "--no-worker") as single:
            for i in range(3):
                single.enqueue("noop", i, queue=moving)
            single.enqueue("noop", None, queue=staying)
        with nexq_server("--store", f"{a.url},{b.url}", "--no-worker") as server:
            report = {n["name"]: n for n in server.api("GET", "/api/nodes")["nodes"]}
            assert report[names[0]]["draining"] == [moving]
            assert report[names[0]]["queues"] == [staying]

            page.goto(server.url + "/#/nodes")
            row = queue_row(page, names[0], moving)
            expect(row).to_have_class(re.compile("row-draining"))
            expect(row).to_have_attribute("data-draining", "true")
            expect(row.locator(".badge-draining")).to_have_text("draining")
            expect(row.locator("td").nth(1)).to_have_text("3")
            # Where it is placed comes from the stream's queue figures.
            expect(row.locator(".drain-note")).to_have_text(
                f"placed on {names[1]}; workers finish these here")
            expect(queue_row(page, names[0], staying)).to_have_attribute("data-draining", "false")
            expect(node_card(page, names[0]).locator('dd[data-fact="draining"]')).to_have_text("1")

            # A new task of the queue goes to its ring node, which now lists it.
            server.enqueue("noop", "new", queue=moving)
            new_row = queue_row(page, names[1], moving)
            expect(new_row).to_have_attribute("data-draining", "false")
            expect(new_row.locator("td").nth(1)).to_have_text("1")
            expect(row.locator("td").nth(1)).to_have_text("3")

            page.goto(server.url + "/#/queues")
            line = page.locator(f'#queues-table tr[data-queue="{moving}"] .queue-nodes')
            expect(line).to_have_text(f"on {names[1]} · also on {names[0]}")
            expect(page.locator(f'#queues-table tr[data-queue="{moving}"] td').nth(1)).to_have_text("4")


def test_one_node(server: Server, page: Any) -> None:
    """One store node: the Nodes page says so, the Queues page names no node."""
    server.enqueue("noop", None, queue="solo", schedule_in=900)
    node = server.api("GET", "/api/nodes")["nodes"]
    assert len(node) == 1
    page.goto(server.url + "/#/nodes")
    card = page.locator("#nodes section.node")
    expect(card).to_have_count(1)
    expect(card.locator(".badge-home")).to_be_visible()
    expect(card).to_have_attribute("data-reachable", "true")
    expect(card.locator('tr[data-queue="solo"] td').nth(2)).to_have_text("1")
    expect(page.locator("#nodes-summary")).to_contain_text("One store node")
    page.goto(server.url + "/#/queues")
    expect(page.locator('#queues-table tr[data-queue="solo"]')).to_be_visible()
    expect(page.locator("#queues-table .queue-nodes")).to_have_count(0)
