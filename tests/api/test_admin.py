"""Queues, dead letters, workers, stats, cron, health and metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import trio
from quart.typing import TestClientProtocol as Client

from nexq.api import create_app
from nexq.api.metrics import Exposition, _durations
from nexq.app import Nexq
from nexq.runtime.histogram import Histogram
from nexq.runtime.runtime import Runtime
from nexq.runtime.worker import Worker

from .conftest import error_of, run_to_end, worker_facts


async def enqueue(client: Client, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/tasks", json={"type": "t", **body})
    assert resp.status_code == 201
    return await resp.get_json()  # type: ignore[no-any-return]


async def test_queues_show_depth_counts_and_running_from_workers(
    client: Client, runtime: Runtime
) -> None:
    await enqueue(client, queue="mail", priority=9)
    await enqueue(client, queue="mail", priority=0)
    await enqueue(client, queue="mail", schedule_in=60)
    await enqueue(client, queue="img")
    await runtime.registry.register(worker_facts("w1", time.time(), running_in=("img", "img")))
    body = await (await client.get("/api/queues")).get_json()
    by_name = {q["name"]: q for q in body["queues"]}
    assert set(by_name) == {"mail", "img"}
    mail = by_name["mail"]
    assert mail["pending"] == 2 and mail["scheduled"] == 1 and mail["paused"] is False
    assert mail["depth_by_priority"]["9"] == 1 and mail["depth_by_priority"]["0"] == 1
    assert mail["running"] == 0 and by_name["img"]["running"] == 2


async def test_running_counts_read_what_a_real_worker_publishes(client: Client, runtime: Runtime) -> None:
    app, release = Nexq(), trio.Event()

    @app.task("hold")
    async def hold(payload: Any) -> None:
        await release.wait()

    app.bind(runtime)
    await enqueue(client, type="hold", queue="mail")
    await enqueue(client, type="hold", queue="mail")
    async with trio.open_nursery() as nursery:
        worker = Worker(runtime, app, concurrency=2, queues=["mail"], heartbeat=0.05)
        await nursery.start(worker.run)
        with trio.fail_after(10):
            while (await (await client.get("/api/stats")).get_json())["counts"]["running"] != 2:
                await trio.sleep(0.02)
        queues = (await (await client.get("/api/queues")).get_json())["queues"]
        assert {q["name"]: q["running"] for q in queues} == {"mail": 2}
        listed = (await (await client.get("/api/workers")).get_json())["workers"]
        assert [(w["id"], w["stale"]) for w in listed] == [(worker.id, False)]
        release.set()
        worker.stop()
    assert (await (await client.get("/api/stats")).get_json())["counts"]["succeeded"] == 2


async def test_pause_and_resume_a_queue(client: Client) -> None:
    await enqueue(client, queue="mail")
    resp = await client.post("/api/queues/mail/pause")
    assert resp.status_code == 200 and await resp.get_json() == {"name": "mail", "paused": True}
    queues = (await (await client.get("/api/queues")).get_json())["queues"]
    assert queues[0]["paused"] is True
    resp = await client.post("/api/queues/mail/resume")
    assert await resp.get_json() == {"name": "mail", "paused": False}
    queues = (await (await client.get("/api/queues")).get_json())["queues"]
    assert queues[0]["paused"] is False


async def test_dead_letters_list_requeue_and_purge(client: Client, runtime: Runtime) -> None:
    for q in ("a", "a", "b"):
        await enqueue(client, queue=q, max_retries=0)
    for q in ("a", "b"):
        await run_to_end(runtime, fail=True, queue=q)
    dead = await (await client.get("/api/dead")).get_json()
    assert len(dead["tasks"]) == 3 and {t["status"] for t in dead["tasks"]} == {"dead"}
    only_a = await (await client.get("/api/dead?queue=a&limit=1")).get_json()
    assert len(only_a["tasks"]) == 1 and only_a["next_cursor"] is not None
    resp = await client.post("/api/dead/requeue", json={"queue": "a"})
    assert await resp.get_json() == {"requeued": 2}
    assert len((await (await client.get("/api/dead")).get_json())["tasks"]) == 1
    # The requeued ones fail again; purge with "all" takes every queue.
    await run_to_end(runtime, fail=True, queue="a")
    resp = await client.post("/api/dead/purge", json={"all": True})
    assert await resp.get_json() == {"purged": 3}
    assert (await (await client.get("/api/dead")).get_json())["tasks"] == []
    assert (await (await client.get("/api/tasks")).get_json())["tasks"] == []


async def test_dead_requeue_all_and_bad_filter(client: Client, runtime: Runtime) -> None:
    await enqueue(client, max_retries=0)
    await run_to_end(runtime, fail=True)
    assert await (await client.post("/api/dead/requeue")).get_json() == {"requeued": 1}
    resp = await client.post("/api/dead/requeue", json={"queue": "a", "extra": 1})
    assert resp.status_code == 400 and error_of(await resp.get_json())["details"]["field"] == "extra"


async def test_workers_are_listed_and_stale_ones_flagged(client: Client, runtime: Runtime) -> None:
    now = time.time()
    fresh, old, slow = (runtime.registry.__class__(runtime.store, runtime.broker.keys) for _ in range(3))
    await fresh.register(worker_facts("fresh", now - 1))
    await old.register(worker_facts("old", now - 11, heartbeat_interval=5))  # > 2 x 5 s
    await slow.register(worker_facts("slow", now - 11, heartbeat_interval=10))
    workers = (await (await client.get("/api/workers")).get_json())["workers"]
    assert {w["id"]: w["stale"] for w in workers} == {"fresh": False, "old": True, "slow": False}
    stats = await (await client.get("/api/stats")).get_json()
    assert stats["workers"] == {"live": 2, "stale": 1}


async def test_stats_counts_by_status_and_throughput(client: Client, runtime: Runtime) -> None:
    await enqueue(client)
    await enqueue(client, max_retries=0)
    await run_to_end(runtime, fail=False)  # both claimed: one acked...
    await enqueue(client, max_retries=0, queue="x")
    await run_to_end(runtime, fail=True, queue="x")
    await enqueue(client, schedule_in=60)
    await enqueue(client)
    resp = await client.get("/api/stats?minutes=5")
    assert resp.status_code == 200
    stats = await resp.get_json()
    assert stats["counts"] == {"scheduled": 1, "pending": 1, "running": 0, "succeeded": 2,
                               "dead": 1, "cancelled": 0}
    assert len(stats["throughput"]) == 5 and stats["throughput"][-1]["processed"] == 2
    assert stats["throughput"][-1]["failed"] == 1
    assert {q["name"] for q in stats["queues"]} == {"default", "x"}
    assert stats["store"]["kind"] == runtime.store.kind and stats["store"]["latency_ms"] >= 0
    assert (await client.get("/api/stats?minutes=0")).status_code == 400


async def test_cron_lists_the_runtime_schedule(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime()
    assert await (await create_app(rt).test_client().get("/api/cron")).get_json() == {"cron": []}

    class Cron:
        async def status(self) -> list[dict[str, Any]]:
            return [{"name": "nightly", "schedule": "0 3 * * *", "timezone": "UTC", "type": "report",
                     "last_fire": None, "next_fire": 1.0}]

    body = await (await create_app(attrs.evolve(rt, cron=Cron())).test_client().get("/api/cron")).get_json()
    assert body["cron"][0]["name"] == "nightly"


async def test_healthz_reports_store_and_latency(client: Client, runtime: Runtime) -> None:
    resp = await client.get("/healthz")
    body = await resp.get_json()
    assert resp.status_code == 200 and body["status"] == "ok"
    assert body["store"] == runtime.store.kind and body["latency_ms"] >= 0


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def test_metrics_expose_queue_state_in_prometheus_text(
    client: Client, runtime: Runtime
) -> None:
    await enqueue(client, queue="mail")
    await enqueue(client, queue="mail", max_retries=0)
    await run_to_end(runtime, fail=False, queue="mail")
    await enqueue(client, queue="mail", priority=9)
    await runtime.registry.register(worker_facts("w1", time.time(), running_in=("mail",) * 3))
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = (await resp.get_data()).decode()
    m = parse_metrics(text)
    assert m['nexq_tasks{queue="mail",status="pending"}'] == 1
    assert m['nexq_tasks{queue="mail",status="running"}'] == 3
    assert m['nexq_tasks{queue="mail",status="succeeded"}'] == 2
    assert m['nexq_queue_depth{queue="mail",priority="9"}'] == 1
    assert m['nexq_tasks_processed_total{queue="mail"}'] == 2
    assert m["nexq_tasks_processed_last_hour"] == 2 and m["nexq_attempts_failed_last_hour"] == 0
    assert m['nexq_workers{state="live"}'] == 1
    assert m['nexq_queue_paused{queue="mail"}'] == 0
    assert m["nexq_recent_handler_duration_seconds_samples"] == 2
    assert "# TYPE nexq_tasks_processed_total counter" in text
    # Every sample belongs to a declared family.
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    for name in m:
        base = name.split("{")[0]
        assert any(base == f or base.startswith(f + "_") for f in families), name


def test_metrics_expose_a_runtime_histogram_when_kept() -> None:
    hist = Histogram(bounds=(0.1, 1.0))
    for v in (0.05, 0.5, 0.7, 3.0):
        hist.observe(v)
    ex = Exposition()
    _durations(ex, hist, [])
    m = parse_metrics(ex.text())
    assert m['nexq_handler_duration_seconds_bucket{le="0.1"}'] == 1
    assert m['nexq_handler_duration_seconds_bucket{le="1"}'] == 3
    assert m['nexq_handler_duration_seconds_bucket{le="+Inf"}'] == 4
    assert m["nexq_handler_duration_seconds_count"] == 4
    assert m["nexq_handler_duration_seconds_sum"] == pytest.approx(4.25)


def test_metric_label_values_are_escaped() -> None:
    ex = Exposition()
    ex.family("x", "gauge", "h", [({"queue": 'a"b\\c\nd'}, 1)])
    assert ex.text().splitlines()[-1] == 'x{queue="a\\"b\\\\c\\nd"} 1'
