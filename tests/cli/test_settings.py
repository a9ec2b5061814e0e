"""A. One app, one truth: store and namespace resolve as flag > NEXQ_* env >
the app's own > default, for nexq run, nexq worker and app.connect()."""

from __future__ import annotations

import json

import pytest
import trio

from nexq.app import Nexq
from nexq.cli.serve import mask
from nexq.config import ConfigError, Settings
from tests.cli.helpers import APP, nexq, wait_log
from tests.runtime.procs import spawn, stop


def test_flag_beats_env_beats_app_beats_default() -> None:
    app = {"store": "redis://app:1", "namespace": "appns"}
    env = {"NEXQ_STORE": "redis://env:2"}
    s = Settings.load({"store": "redis://flag:3"}, env=env, app=app)
    assert (s.store, s.namespace) == ("redis://flag:3", "appns")
    assert s.origins["store"] == "--store" and s.origins["namespace"] == "the app"
    s = Settings.load({}, env=env, app=app)
    assert s.store == "redis://env:2" and s.origins["store"] == "NEXQ_STORE"
    s = Settings.load({}, env={}, app=app)
    assert s.store == "redis://app:1" and s.origins["store"] == "the app"
    s = Settings.load({}, env={}, app={"store": None})
    assert (s.store, s.namespace) == (None, "nexq") and s.origins["store"] == "default"


def test_a_bad_value_from_the_app_names_the_app() -> None:
    with pytest.raises(ConfigError, match="the app's port"):
        Settings.load({}, env={}, app={"port": 70000})


async def test_connect_takes_env_over_the_app_and_the_argument_over_env(
        resp_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ns = prefix.rstrip(":")
    app = Nexq("redis://127.0.0.1:1", namespace=ns)  # unreachable: must not be used
    monkeypatch.setenv("NEXQ_STORE", resp_url)
    async with app.connect():
        h = await app.enqueue("echo", 1)
        assert app._runtime is not None and app._runtime.settings.namespace == ns
    monkeypatch.setenv("NEXQ_STORE", "redis://127.0.0.1:1")
    async with app.connect(resp_url):
        assert (await app.handle(h.id).info()).spec.payload == 1  # same store, same namespace


@pytest.mark.slow
async def test_worker_and_run_use_the_apps_store_and_namespace(resp_url: str, prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ns = prefix.rstrip(":")
    env = {"NEXQ_TEST_APP_STORE": resp_url, "NEXQ_TEST_APP_NAMESPACE": ns}
    log = tmp_path / "w.log"
    w = spawn("worker", "--app", APP, env=env, log=str(log))
    try:
        text = await trio.to_thread.run_sync(wait_log, log, "worker started")
        assert f"store: {mask(resp_url)} (from the app)" in text
        assert f"namespace: {ns} (from the app)" in text
        app = Nexq(resp_url, namespace=ns)  # what the app's producers see
        async with app.connect():
            assert (await (await app.enqueue("echo", "hi")).result(timeout=30))["pid"] == w.pid
        run = spawn("run", "--app", APP, "--namespace", f"{ns}-other", "--port", "0", env=env,
                    log=str(tmp_path / "run.log"))
        try:
            text = await trio.to_thread.run_sync(wait_log, tmp_path / "run.log", "run started")
            assert f"store: {mask(resp_url)} (from the app)" in text
            assert f"namespace: {ns}-other (from --namespace)" in text
            assert f"WARNING nexq: --namespace overrides the app's namespace {ns}" in text
        finally:
            stop(run)
    finally:
        stop(w)


@pytest.mark.slow
def test_enqueue_and_tasks_use_the_apps_store_namespace_and_handler_defaults(resp_url: str, prefix: str) -> None:
    ns = prefix.rstrip(":")
    env = {"NEXQ_TEST_APP_STORE": resp_url, "NEXQ_TEST_APP_NAMESPACE": ns}
    r = nexq("enqueue", "echo", "--app", APP, "--json", env=env)
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    assert made["max_retries"] == 0  # @app.task("echo", max_retries=0)
    r = nexq("tasks", "show", made["id"], "--store", resp_url, "--namespace", ns, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["id"] == made["id"]
    r = nexq("tasks", "list", "--app", APP, "--json", env=env)
    assert [t["id"] for t in json.loads(r.stdout)] == [made["id"]]
