"""E. nexq enqueue / nexq tasks talk to a running nexq run: found through
the data directory it holds, or named with --api (and --api-token)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nexq.cli.discovery import SERVER_FILE
from tests.cli.helpers import nexq, one_line_error, wait_for
from tests.runtime.procs import api, spawn, stop, wait_http
from tests.servers import free_port

pytestmark = pytest.mark.slow


def test_the_cli_finds_the_nexq_run_holding_the_data_directory(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    run = spawn("run", "--port", str(port), "--data-dir", str(data), log=str(tmp_path / "run.log"))
    try:
        wait_http(port)
        wait_for(lambda: (data / SERVER_FILE).exists(), what="server file")
        d = ("--data-dir", str(data))
        r = nexq("enqueue", "send_email", "--payload", '{"to": "ada@example.com"}', "--json", *d)
        assert r.returncode == 0, r.stderr
        made = json.loads(r.stdout)
        assert made["created"] and api(port, "GET", f"/api/tasks/{made['id']}")["type"] == "send_email"

        r = nexq("tasks", "list", *d)
        assert r.returncode == 0 and made["id"] in r.stdout and "send_email" in r.stdout
        listed = json.loads(nexq("tasks", "list", "--json", *d).stdout)
        assert [t["id"] for t in listed] == [made["id"]]
        r = nexq("tasks", "show", made["id"], *d)
        assert r.returncode == 0 and f"id         {made['id']}" in r.stdout
        assert json.loads(nexq("tasks", "show", made["id"], "--json", *d).stdout)["payload"] == {"to": "ada@example.com"}

        one_line_error(nexq("tasks", "show", "nope", *d), 4)
        wait_for(lambda: api(port, "GET", f"/api/tasks/{made['id']}")["status"] == "succeeded", what="success")
        line = one_line_error(nexq("tasks", "cancel", made["id"], *d), 1)
        assert "already ended succeeded" in line
        r = nexq("tasks", "retry", made["id"], *d)  # a succeeded task runs again
        assert r.returncode == 0, r.stderr
        wait_for(lambda: len(api(port, "GET", f"/api/tasks/{made['id']}")["attempts"]) == 2, what="a rerun")
    finally:
        assert stop(run) == 0
    assert not (data / SERVER_FILE).exists()  # removed at exit
    r = nexq("tasks", "list", "--data-dir", str(data))  # nobody holds it now: read it directly
    assert r.returncode == 0 and made["id"] in r.stdout


def test_api_flag_and_token(tmp_path: Path) -> None:
    port = free_port()
    run = spawn("run", "--port", str(port), "--data-dir", str(tmp_path / "d"), "--api-token", "tok-1",
                log=str(tmp_path / "run.log"))
    try:
        wait_http(port)
        url = f"http://127.0.0.1:{port}"
        line = one_line_error(nexq("enqueue", "noop", "--api", url), 3)
        assert "--api-token" in line
        one_line_error(nexq("enqueue", "noop", "--api", url, "--api-token", "wrong"), 3)
        r = nexq("enqueue", "noop", "--priority", "high", "--json", env={"NEXQ_API": url, "NEXQ_API_TOKEN": "tok-1"})
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["priority"] == 9
        line = one_line_error(nexq("enqueue", "noop", "--api", url, "--api-token", "tok-1",
                                   "--depends-on", "no-such-parent"), 2)
        assert "no-such-parent" in line
    finally:
        assert stop(run) == 0
    line = one_line_error(nexq("tasks", "list", "--api", url), 3)
    assert "unreachable" in line
