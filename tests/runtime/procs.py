"""Start real nexq processes for tests and talk to them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.servers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def nexq_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nexq.cli.main", *args]


def spawn(*args: str, env: dict[str, str] | None = None, log: str | None = None) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(nexq_cmd(*args), cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)


def wait_http(port: int, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nexq did not answer on port {port}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, limit: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@contextmanager
def nexq_run(*args: str, log: str | None = None) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    proc = spawn("run", "--port", str(port), *args, log=log)
    try:
        wait_http(port)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def api(port: int, method: str, path: str, **kw: Any) -> Any:
    r = httpx.request(method, f"http://127.0.0.1:{port}{path}", timeout=10, **kw)
    r.raise_for_status()
    return r.json()


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def children_of(pid: int) -> list[int]:
    """The pids of the live processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields and fields[0] != "Z" and int(fields[1]) == pid:
            out.append(int(entry))
    return sorted(out)
