"""Run the nexq command as a user would and read what it says."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.runtime.procs import ROOT, nexq_cmd

APP = "tests.cli.apps:app"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without NEXQ_* settings (they would change what is tested)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXQ_") or k.startswith("NEXQ_TEST_")}
    return {**env, "PYTHONPATH": ROOT, **(extra or {})}


def nexq(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``nexq ARGS`` to completion, in the repository, without NEXQ_* from outside."""
    return subprocess.run(nexq_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=clean_env(env), check=False)


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The only stderr line of a failed command that exited ``code``."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nexq: "), result.stderr
    assert "Traceback" not in result.stderr and "sub-exception" not in result.stderr
    return lines[0]


def wait_for(check: Callable[[], bool], limit: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {limit} s")
        time.sleep(0.1)


def wait_log(log: Path, text: str, limit: float = 30) -> str:
    """The log's content once it holds ``text``."""
    wait_for(lambda: log.exists() and text in log.read_text(), limit, repr(text))
    return log.read_text()
