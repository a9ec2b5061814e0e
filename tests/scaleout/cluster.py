"""Nexq processes on a NetBed, and clients that reach them from the root namespace.

The pieces a multi-host test or benchmark needs on top of ``netbed``: the
command lines of a redis-server and of nexq bound to a host's address, and
``Driver``, which talks to the bed's API and store through Unix sockets
forwarded by a probe host (the caller stays in the root namespace, which has
no route to the bed). Nothing here depends on pytest.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import redis

from tests.scaleout.netbed import Host

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T = TypeVar("T")
# What a server that is still starting, or a host cut off, makes a check raise.
NOT_YET: tuple[type[Exception], ...] = (OSError, httpx.HTTPError, redis.RedisError)


def redis_argv(binary: str, host: Host, port: int, workdir: str) -> list[str]:
    """A throw-away redis-server on ``host.addr:port``: no persistence, foreground,
    no password (protected mode off: only the bed's hosts can reach it)."""
    return [
        binary, "--bind", host.addr, "--port", str(port), "--protected-mode", "no",
        "--save", "", "--appendonly", "no", "--daemonize", "no",
        "--dir", workdir, "--logfile", os.path.join(workdir, f"redis-{host.name}-{port}.log"),
    ]


def nexq_argv(*args: str) -> list[str]:
    """``nexq ARGS`` run from this checkout with the current interpreter."""
    return [sys.executable, "-m", "nexq.cli.main", *args]


def nexq_env(**extra: str) -> dict[str, str]:
    """Our environment, with this checkout importable (for ``--app tests...``)."""
    return {**os.environ, "PYTHONPATH": ROOT, **extra}


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    """Call ``check`` until it returns something truthy; that value.

    Network errors from ``check`` (``NOT_YET``) count as "not yet", others
    propagate; after ``timeout`` s raises TimeoutError naming ``what`` and
    the last network error."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except NOT_YET as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout} s (last error: {last!r})")
        time.sleep(every)


class Driver:
    """The caller's view of the bed: the REST API and the store, over forwarded sockets."""

    def __init__(self, api_socket: str, store_socket: str) -> None:
        # The host name is only the Host header: the Unix socket decides where it goes.
        self.http = httpx.Client(transport=httpx.HTTPTransport(uds=api_socket),
                                 base_url="http://nexq-api", timeout=15)
        self.store = redis.Redis(unix_socket_path=store_socket, protocol=2, socket_timeout=10)

    def close(self) -> None:
        self.http.close()
        self.store.close()

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """The JSON answer of ``METHOD path``; raises httpx.HTTPStatusError on 4xx/5xx."""
        r = self.http.request(method, path, **kw)
        r.raise_for_status()
        return r.json()

    def workers(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/api/workers")["workers"])

    def tasks(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each task by id, as ``GET /api/tasks/{id}`` shows it."""
        return {i: self.api("GET", f"/api/tasks/{i}") for i in ids}

    def enqueue(self, tasks: list[dict[str, Any]]) -> list[str]:
        """Enqueue with one ``POST /api/tasks/batch``; the new ids in order."""
        return [t["id"] for t in self.api("POST", "/api/tasks/batch", json={"tasks": tasks})]

    def wait_statuses(self, ids: list[str], want: set[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Poll until every task's status is in ``want``; their last state."""

        def done() -> dict[str, dict[str, Any]] | None:
            tasks = self.tasks(ids)
            return tasks if all(t["status"] in want for t in tasks.values()) else None

        return wait_for(done, timeout, f"{len(ids)} tasks {sorted(want)}", every=0.2)
