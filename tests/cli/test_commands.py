"""G. nexq enqueue's options, --json output, cancel/retry reasons, tasks list
with an id, and nexq doctor's output and data directory."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nexq.cli.doctor import human_bytes
from tests.cli.helpers import nexq, one_line_error
from tests.servers import free_port

pytestmark = pytest.mark.slow


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 1288490188, 5 << 40)] == [
        "0 B", "1023 B", "1.0 KiB", "1.2 GiB", "5.0 TiB"]


def test_enqueue_options_reach_the_task(resp_url: str, prefix: str) -> None:
    s = ("--store", resp_url, "--namespace", prefix.rstrip(":"))
    parent = json.loads(nexq("enqueue", "a", "--json", *s).stdout)
    when = time.time() + 3600
    r = nexq("enqueue", "b", "--json", "--timeout", "2.5", "--unique-key", "only-one", "--max-retries", "7",
             "--run-at", datetime.fromtimestamp(when, UTC).isoformat(), "--depends-on", parent["id"],
             "--queue", "mail", "--payload", '{"n": 1}', *s)
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    assert (t["timeout"], t["unique_key"], t["max_retries"], t["queue"], t["payload"]) == (
        2.5, "only-one", 7, "mail", {"n": 1})
    assert t["depends_on"] == [parent["id"]] and t["created"] is True
    r = nexq("enqueue", "b", "--unique-key", "only-one", *s)
    assert r.returncode == 0 and f"live task {t['id']}" in r.stdout  # not a second one
    r = nexq("enqueue", "c", "--json", "--run-at", str(int(when)), *s)
    assert json.loads(r.stdout)["status"] == "scheduled"


def test_list_show_cancel_retry_say_what_happened(resp_url: str, prefix: str) -> None:
    s = ("--store", resp_url, "--namespace", prefix.rstrip(":"))
    t = json.loads(nexq("enqueue", "x", "--json", *s).stdout)
    listed = json.loads(nexq("tasks", "list", "--json", *s).stdout)
    assert [x["id"] for x in listed] == [t["id"]]
    line = one_line_error(nexq("tasks", "list", t["id"], *s), 2)
    assert f"nexq tasks show {t['id']}" in line
    line = one_line_error(nexq("tasks", "retry", t["id"], *s), 1)
    assert "it is pending; only ended tasks (dead, cancelled or succeeded) can run again" in line
    r = nexq("tasks", "cancel", t["id"], *s)
    assert r.returncode == 0 and "cancelled" in r.stdout
    line = one_line_error(nexq("tasks", "cancel", t["id"], *s), 1)
    assert "already ended cancelled" in line
    r = nexq("tasks", "retry", t["id"], "--json", *s)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "pending"
    shown = json.loads(nexq("tasks", "show", t["id"], "--json", *s).stdout)
    assert shown["attempt"] == 1 and [a["outcome"] for a in shown["attempts"]] == ["cancelled"]


def test_doctor_names_an_unreachable_store_plainly() -> None:
    r = nexq("doctor", "--store", f"redis://127.0.0.1:{free_port()}", "--store-timeout", "1")
    assert r.returncode == 1 and "Connection refused" in r.stdout
    assert "sub-exception" not in r.stdout + r.stderr


def test_doctor_memory_is_human_readable_and_it_creates_no_data_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    line = one_line_error(nexq("doctor", "--data-dir", str(missing)), 2)
    assert "--data-dir" in line and not missing.exists()
    line = one_line_error(nexq("tasks", "list", "--data-dir", str(missing)), 2)
    assert "--data-dir" in line and not missing.exists()
    (tmp_path / "d").mkdir()
    nexq("enqueue", "t", "--data-dir", str(tmp_path / "d"))
    r = nexq("doctor", "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 0 and re.search(r"OK    memory       embedded store, \d+ keys, ~\d+(\.\d)? (B|KiB)\n",
                                           r.stdout), r.stdout
