"""The recipes in examples/ run: each enqueues to a real `nexq worker`
process (examples.tasks:app) on redis-server and gets the result back."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.polling import poll
from tests.runtime.procs import ROOT, spawn, stop
from tests.servers import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(resp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """NEXQ_STORE / NEXQ_NAMESPACE for the recipes (this process too), and a
    `nexq worker` of the examples' app serving them for the module."""
    values = {"NEXQ_STORE": resp_url, "NEXQ_NAMESPACE": f"ex{os.getpid()}{time.monotonic_ns() % 10**6}"}
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in values.items():
            mp.setenv(k, v)
        worker = spawn("worker", "--app", "examples.tasks:app", env=values, log=str(log))
        try:
            yield values
        finally:
            stop(worker)


def succeeded(get: Any, task_id: str) -> Any:
    """Poll ``get(task_id)`` (a JSON status body) until the task succeeded."""
    return poll(lambda: (body := get(task_id))["status"] == "succeeded" and body)


def test_fastapi_endpoint_enqueues_under_uvicorn(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    with open(tmp_path / "uvicorn.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.fastapi_app:api", "--host", "127.0.0.1",
             "--port", str(port)], cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": ROOT},
            stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/tasks/none", timeout=1).status_code == 404
            except httpx.HTTPError:
                return False

        poll(up)
        r = httpx.post(f"{base}/signup", json={"email": "ada@example.com"}, timeout=10)
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        body = succeeded(lambda i: httpx.get(f"{base}/tasks/{i}", timeout=10).json(), task_id)
        assert body["result"] == {"sent_to": "ada@example.com"}
    finally:
        server.terminate()
        server.wait(10)


def test_flask_view_enqueues(env: dict[str, str]) -> None:
    from examples.flask_app import web

    client = web.test_client()
    r = client.post("/signup", json={"email": "grace@example.com"})
    assert r.status_code == 202
    task_id = r.get_json()["task_id"]
    body = succeeded(lambda i: client.get(f"/tasks/{i}").get_json(), task_id)
    assert body["result"] == {"sent_to": "grace@example.com"}


def test_django_view_enqueues(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "examples.django_site.settings")
    import django
    from django.test import Client as DjangoClient

    django.setup()
    client = DjangoClient()
    r = client.post("/signup", data={"email": "alan@example.com"}, content_type="application/json")
    assert r.status_code == 202
    task_id = r.json()["task_id"]
    body = succeeded(lambda i: client.get(f"/tasks/{i}").json(), task_id)
    assert body["result"] == {"sent_to": "alan@example.com"}
    assert client.get("/tasks/no-such-task").status_code == 404


def test_plain_script_enqueues_and_waits(env: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", "examples.script"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **env, "PYTHONPATH": ROOT}, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 10
    assert [ast.literal_eval(line.split(" ", 1)[1])["thumbnail_width"] for line in lines] == [(640 + i) // 4 for i in range(10)]
