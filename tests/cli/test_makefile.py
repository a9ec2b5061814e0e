"""H. make run reinstalls only when pyproject.toml changed (a stamp in .venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.runtime.procs import ROOT


def dry_run(where: Path, target: str) -> str:
    return subprocess.run(["make", "-n", target], cwd=where, capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_installs_only_when_pyproject_changed(tmp_path: Path) -> None:
    shutil.copy(os.path.join(ROOT, "Makefile"), tmp_path)
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    assert "pip install -q -e ." in dry_run(tmp_path, "run")  # never installed
    stamp = tmp_path / ".venv" / ".nexq-installed"
    stamp.touch()
    os.utime(tmp_path / "pyproject.toml", (1_000_000, 1_000_000))  # older than the stamp
    out = dry_run(tmp_path, "run")
    assert "pip install" not in out and ".venv/bin/nexq run" in out
    os.utime(tmp_path / "pyproject.toml")  # changed after the install
    os.utime(stamp, (1_000_000, 1_000_000))
    assert "pip install -q -e ." in dry_run(tmp_path, "run")
    stamp.touch()
    assert f'PATH="{tmp_path}/.venv/bin:$PATH"' in dry_run(tmp_path, "shell")  # make shell: nexq on PATH
