"""Secrets (API token, store password) never reach the logs."""

from __future__ import annotations

import httpx
import pytest

from tests.runtime.procs import nexq_run, spawn, stop
from tests.servers import redis_server

pytestmark = pytest.mark.slow


def test_token_and_store_password_are_never_logged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    token, password = "tok-SECRET-4242", "pw-SECRET-1717"
    log = tmp_path / "run.log"
    with redis_server(password=password) as server:
        store = f"redis://:{password}@127.0.0.1:{server.port}"
        w = spawn("worker", "--store", store, "--app", "tests.runtime.sample_app:app", "--log-level", "debug",
                  log=str(tmp_path / "w.log"))
        with nexq_run("--store", store, "--api-token", token, "--log-level", "debug", log=str(log)) as (proc, port):
            h = {"Authorization": f"Bearer {token}"}
            r = httpx.post(f"http://127.0.0.1:{port}/api/tasks", json={"type": "noop"}, headers=h)
            assert r.status_code == 201
            assert httpx.get(f"http://127.0.0.1:{port}/api/tasks", headers={"Authorization": "Bearer wrong"}).status_code == 401
            server.stop()  # make it log connection errors, which name the store
            httpx.get(f"http://127.0.0.1:{port}/healthz")
            stop(proc)
        stop(w)
    text = log.read_text() + (tmp_path / "w.log").read_text()
    assert "redis://" in text  # the store is named...
    assert password not in text and token not in text  # ...its secrets are not
