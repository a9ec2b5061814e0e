"""A cache that fills up: Nexq refuses what it cannot keep and reports evictions.

Both tests run a real `nexq run` against a redis-server configured like a
Pogocache with a small --maxmemory: it evicts (allkeys-lru) once full.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.runtime.procs import spawn, stop, wait_http
from tests.servers import free_port, redis_server

pytestmark = pytest.mark.slow

APP = "tests.runtime.sample_app:app"
PAD = "x" * 10_000  # 10 KB payloads


def post_batch(port: int, n: int, tag: int) -> tuple[int, list[str]]:
    tasks = [{"type": "sleep", "payload": {"seconds": 0.002, "pad": PAD, "b": tag, "i": i}} for i in range(n)]
    r = httpx.post(f"http://127.0.0.1:{port}/api/tasks/batch", json={"tasks": tasks}, timeout=60)
    if r.status_code == 503:
        assert r.json()["error"]["code"] == "store_full", r.text
        return 503, []
    assert r.status_code == 201, r.text
    return 201, [t["id"] for t in r.json()]


def statuses(port: int, ids: list[str]) -> dict[str, str]:
    out = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
        for tid in ids:
            r = c.get(f"/api/tasks/{tid}")
            out[tid] = r.json()["status"] if r.status_code == 200 else f"missing ({r.status_code})"
    return out


def test_a_full_store_refuses_new_tasks_and_loses_none_it_accepted(tmp_path: Path) -> None:
    with redis_server("--maxmemory", "20mb", "--maxmemory-policy", "allkeys-lru") as server:
        port = free_port()
        proc = spawn("run", "--port", str(port), "--store", server.url, "--namespace", "full", "--app", APP,
                     "--store-memory-limit", "16M", "--concurrency", "4", "--log-level", "warning",
                     env={"NEXQ_RETENTION": "5"}, log=str(tmp_path / "run.log"))
        r = redis.Redis(port=server.port, protocol=2)
        try:
            wait_http(port)
            # 60 batches of 200 tasks of 10 KB, 6 at a time: 120 MB offered to a 20 MB store whose
            # --store-memory-limit is 80 % of it (the rest: the server's own buffers under load).
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                results = list(pool.map(lambda b: post_batch(port, 200, b), range(60)))
            accepted = [tid for code, ids in results for tid in ids]
            refused = sum(1 for code, _ in results if code == 503)
            assert accepted and refused, (len(accepted), refused)
            deadline = time.monotonic() + 180
            left = list(accepted)
            while left and time.monotonic() < deadline:
                now = statuses(port, left)
                assert not [t for t, s in now.items() if s.startswith("missing") or s == "dead"], now
                left = [t for t, s in now.items() if s != "succeeded"]
                time.sleep(0.5)
            assert not left, f"{len(left)} of {len(accepted)} accepted tasks did not succeed"
            info = r.info()
            assert info["evicted_keys"] == 0, info["evicted_keys"]
            print(f"accepted {len(accepted)} tasks in {len(accepted) // 200} batches, refused {refused} "
                  f"batches; redis used_memory_peak {info['used_memory_peak'] / 1048576:.1f} MiB of 20")
            # The backlog drained and its retention (5 s) passes: new tasks are accepted again.
            deadline = time.monotonic() + 60
            while post_batch(port, 1, -1)[0] == 503:
                assert time.monotonic() < deadline, "still refusing a minute after the backlog drained"
                time.sleep(0.5)
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
        finally:
            stop(proc)


def evictions_metric(port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    m = re.search(r'^nexq_store_evictions_detected_total\{node="[^"]*"\} (\d+)$', text, re.MULTILINE)
    assert m, text
    return int(m.group(1))


def test_evictions_are_reported_within_a_minute(tmp_path: Path) -> None:
    with redis_server("--maxmemory", "8mb", "--maxmemory-policy", "allkeys-lru") as server:
        port = free_port()
        proc = spawn("run", "--port", str(port), "--store", server.url, "--namespace", "ev", "--app", APP,
                     "--log-level", "warning", log=str(tmp_path / "run.log"))
        r = redis.Redis(port=server.port, protocol=2)
        try:
            wait_http(port)
            deadline = time.monotonic() + 30
            while len(r.keys("ev:canary:*")) < 3:  # a few canaries, the oldest 10 s old
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
            assert evictions_metric(port) == 0
            # Fill the server behind Nexq's back until it evicts, and keep it evicting.
            first_eviction: float | None = None
            body: dict[str, Any] = {}
            i = 0
            while True:
                r.set(f"ballast:{i}", b"b" * 100_000)
                i += 1
                if first_eviction is None and r.info("stats")["evicted_keys"] > 0:
                    first_eviction = time.monotonic()
                if first_eviction is not None and i % 20 == 0:
                    body = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
                    if body["status"] == "degraded":
                        break
                    assert time.monotonic() - first_eviction < 60, "no eviction reported within a minute"
                    time.sleep(0.1)
            print(f"reported {time.monotonic() - (first_eviction or 0):.1f} s after the first eviction")
            assert any("evicted keys" in why for why in body["reasons"]), body
            assert body["evictions_detected"] >= 1 and evictions_metric(port) >= 1
            assert proc.poll() is None  # Nexq's own keys were evicted too: it kept running
        finally:
            stop(proc)
