"""Start throw-away RESP servers for tests on free loopback ports.

Tests never touch a server they did not start, except the one named by
``NEXQ_TEST_STORE_URL`` (a real Pogocache), where they isolate by key prefix
and never flush.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import attrs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.define
class RedisServer:
    """A redis-server child process we own (so we may stop/kill/restart it)."""

    port: int
    dir: str
    args: list[str]
    password: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.dir,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", os.path.join(self.dir, "redis.log"),
            *self.args,
        ]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start within 10 s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(10)
        self.proc = None


def find_redis_server() -> str:
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if path is None:
        raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
    return path


@contextmanager
def redis_server(*args: str, password: str | None = None) -> Iterator[RedisServer]:
    """A running redis-server on a free port, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="nexq-redis-") as d:
        server = RedisServer(port=free_port(), dir=d, args=list(args), password=password)
        server.start()
        try:
            yield server
        finally:
            server.stop()
