"""Many real processes on one RESP server: nothing lost, nothing twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.slow


def test_two_producers_eight_claimers_ten_thousand_tasks(resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    py = [sys.executable, "-m", "tests.queue.procs"]
    outs = [tmp_path / f"claimer{i}.txt" for i in range(8)]
    claimers = [subprocess.Popen(py + ["claim", resp_url, ns, str(o)]) for o in outs]
    producers = [
        subprocess.Popen(py + ["produce", resp_url, ns, str(start), "5000"]) for start in (0, 5000)
    ]
    try:
        for p in producers:
            assert p.wait(240) == 0
        r = redis.Redis.from_url(resp_url, protocol=2)
        r.set(ns + ":done", b"1")
        r.close()
        for c in claimers:
            assert c.wait(240) == 0
    finally:
        for p in producers + claimers:
            if p.poll() is None:
                p.kill()
    claimed = [int(line) for o in outs for line in o.read_text().split()]
    assert len(claimed) == 10_000, f"claimed {len(claimed)}"
    assert sorted(claimed) == list(range(10_000))  # 0 lost, 0 claimed twice
    assert sum(1 for o in outs if o.read_text()) >= 4  # the work was shared
