"""D. Every user error is one line on stderr with a documented exit code
(2 usage, 3 store unreachable or credentials refused, 4 not found, 1 other),
never a traceback unless --log-level debug."""

from __future__ import annotations

import argparse
import socket

import pytest

from nexq.cli.errors import EXIT_CODES, unwrap
from nexq.cli.main import build_parser
from nexq.errors import StoreUnavailable
from tests.cli.helpers import nexq, one_line_error
from tests.servers import free_port, redis_server

pytestmark = pytest.mark.slow


def test_unreachable_store_is_exit_3() -> None:
    line = one_line_error(nexq("tasks", "list", "--store", f"redis://127.0.0.1:{free_port()}",
                               "--store-timeout", "1"), 3)
    assert "unreachable" in line and "Connection refused" in line


def test_wrong_password_is_exit_3_and_says_how_to_pass_one(prefix: str) -> None:
    with redis_server(password="right-one") as server:
        url = f"redis://:wrong@127.0.0.1:{server.port}"
        line = one_line_error(nexq("tasks", "list", "--store", url, "--namespace", prefix), 3)
        assert "credentials" in line and "redis://:PASSWORD@" in line and "wrong" not in line
        line = one_line_error(nexq("enqueue", "t", "--store", url, "--namespace", prefix), 3)
        assert "credentials" in line


@pytest.mark.parametrize("action", ["show", "cancel", "retry"])
def test_unknown_task_id_is_exit_4(resp_url: str, prefix: str, action: str) -> None:
    line = one_line_error(nexq("tasks", action, "no-such-task", "--store", resp_url, "--namespace", prefix), 4)
    assert "'no-such-task' not found" in line


@pytest.mark.parametrize(("args", "named"), [
    (["enqueue", "t", "--priority", "urgent"], "--priority"),
    (["enqueue", "t", "--delay", "-5"], "--delay"),
    (["enqueue", "t", "--payload", "{nope"], "--payload"),
    (["enqueue", "t", "--max-retries", "-1"], "--max-retries"),
    (["enqueue", "t", "--run-at", "next tuesday"], "--run-at"),
    (["enqueue", "t", "--delay", "5", "--run-at", "2030-01-01T00:00:00Z"], "--run-at"),
    (["tasks", "list", "--status", "bogus"], "--status"),
    (["tasks", "list", "--limit", "0"], "--limit"),
    (["tasks", "show"], "task id"),
    (["tasks", "lists"], "action"),
    (["worker", "--store", "ftp://x", "--app", "tests.cli.apps:app"], "scheme"),
    (["run", "--port", "99999"], "--port"),
    (["nosuchcommand"], "COMMAND"),
    (["tasks", "list", "--api", "http://127.0.0.1:1", "--store", "memory://"], "not both"),
])
def test_bad_usage_is_exit_2_naming_the_flag(args: list[str], named: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    line = one_line_error(nexq(*args, "--data-dir", str(tmp_path)) if args[0] in ("enqueue", "tasks")
                          else nexq(*args), 2)
    assert named in line


def test_bad_status_names_the_valid_values() -> None:
    line = one_line_error(nexq("tasks", "list", "--status", "bogus"), 2)
    for status in ("waiting", "scheduled", "pending", "running", "retrying", "succeeded", "dead", "cancelled"):
        assert status in line


def test_busy_port_is_exit_1_naming_the_port(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(nexq("run", "--port", str(port), "--data-dir", str(tmp_path)), 1)
    assert f"--port {port}" in line and "in use" in line


def test_debug_log_level_adds_the_traceback() -> None:
    r = nexq("tasks", "list", "--store", f"redis://127.0.0.1:{free_port()}", "--store-timeout", "1",
             "--log-level", "debug")
    assert r.returncode == 3
    assert "Traceback" in r.stderr and r.stderr.splitlines()[-1].startswith("nexq: the store is unreachable")


def test_help_documents_the_exit_codes_and_every_option_has_help() -> None:
    r = nexq("--help")
    assert r.returncode == 0 and EXIT_CODES in r.stdout
    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "nexq")
    assert missing == []
    assert "--with-scheduler" not in nexq("worker", "--help").stdout  # accepted, hidden


def test_unwrap_finds_the_error_inside_trios_groups() -> None:
    err = StoreUnavailable("down")
    assert unwrap(ExceptionGroup("outer", [ExceptionGroup("inner", [err])])) is err
    assert unwrap(ExceptionGroup("g", [ValueError("x"), err])) is err  # ours explains it best
