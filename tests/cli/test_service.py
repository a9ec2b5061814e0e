"""B, C and D's banner: what nexq run and nexq worker start with, and say."""

from __future__ import annotations

import pytest
import trio

from nexq import __version__
from nexq.app import Nexq
from nexq.task import Status
from tests.cli.helpers import APP, nexq, one_line_error, wait_log
from tests.runtime.procs import spawn, stop
from tests.servers import redis_server

pytestmark = pytest.mark.slow


def test_worker_without_app_refuses_in_one_line(resp_url: str) -> None:
    line = one_line_error(nexq("worker", "--store", resp_url), 2)
    assert "--app module:attribute" in line


def test_run_without_app_serves_the_demo_handlers_and_says_so(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "run.log"
    run = spawn("run", "--port", "0", "--data-dir", str(tmp_path / "d"), log=str(log))
    try:
        text = wait_log(log, "dashboard and API on")
        assert "handlers: generate_report, noop, send_email: the demo handlers of the quick start" in text
        assert "namespace: nexq (default)" in text
    finally:
        assert stop(run) == 0


def test_worker_banner_names_everything_it_runs_with_and_masks_the_password(prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "w.log"
    with redis_server(password="s3cret-pw") as server:
        w = spawn("worker", "--app", APP, "--store", server.url, "--namespace", prefix.rstrip(":"),
                  "--queues", "mail,default", "--concurrency", "7", "--no-scheduler", log=str(log))
        try:
            text = wait_log(log, "handlers:")  # the banner's last line
        finally:
            assert stop(w) == 0
    assert f"nexq {__version__}: worker started" in text
    assert f"store: redis://:***@127.0.0.1:{server.port} (from --store)" in text and "s3cret-pw" not in text
    assert f"namespace: {prefix.rstrip(':')} (from --namespace)" in text
    assert "worker: queues mail,default, concurrency 7; scheduler: off (--no-scheduler)" in text
    assert "handlers: echo, tick (from tests.cli.apps:app)" in text


async def test_worker_runs_the_scheduler_by_default(resp_url: str, prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Only a scheduler fires cron entries: a lone worker running the app's
    # every-second entry shows that it runs one.
    ns = prefix.rstrip(":")
    env = {"NEXQ_TEST_APP_STORE": resp_url, "NEXQ_TEST_APP_NAMESPACE": ns, "NEXQ_TEST_APP_CRON": "1"}
    log = tmp_path / "w.log"
    w = spawn("worker", "--app", APP, env=env, log=str(log))
    try:
        text = await trio.to_thread.run_sync(wait_log, log, "scheduler:")
        assert "scheduler: on" in text
        app = Nexq(resp_url, namespace=ns)
        async with app.connect():
            with trio.fail_after(30):
                while True:
                    page = await app.broker.inspector().list(type="tick", status=Status.SUCCEEDED.value)
                    if page.tasks:
                        break
                    await trio.sleep(0.2)
        assert page.tasks[0].result == {"cron": True}
    finally:
        assert stop(w) == 0


def test_with_scheduler_is_still_accepted(resp_url: str, prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "w.log"
    w = spawn("worker", "--app", APP, "--store", resp_url, "--namespace", prefix.rstrip(":"),
              "--with-scheduler", log=str(log))
    try:
        assert "scheduler: on" in wait_log(log, "scheduler:")
    finally:
        assert stop(w) == 0
