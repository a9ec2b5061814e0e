"""A process without a type's handler enqueues it with the defaults the
live workers publish: a `nexq worker` of the app and a separate `nexq run
--no-worker` without it, on redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.runtime.procs import ROOT, api, nexq_cmd, nexq_run, spawn, stop
from tests.polling import poll

pytestmark = pytest.mark.slow

TYPED = "tests.runtime.typed_app:app"




def test_a_server_without_the_handler_enqueues_with_the_workers_defaults(
        resp_url: str, prefix: str, tmp_path: Path) -> None:
    ns = prefix.rstrip(":")
    store = ["--store", resp_url, "--namespace", ns]
    worker = spawn("worker", *store, "--app", TYPED, "--queues", "mail", log=str(tmp_path / "w.log"))
    try:
        with nexq_run("--no-worker", *store, log=str(tmp_path / "run.log")) as (_, port):
            [w] = poll(lambda: api(port, "GET", "/api/workers")["workers"])
            types = {t["type"]: t for t in api(port, "GET", "/api/types")["types"]}
            assert types["deliver_mail"]["workers"] == [w["id"]] and not types["deliver_mail"]["local"]

            task = api(port, "POST", "/api/tasks", json={"type": "deliver_mail", "payload": {"to": "a"}})
            assert (task["queue"], task["max_retries"], task["priority"], task["timeout"]) == ("mail", 0, 7, 12)
            # ... so the worker serving only the queue 'mail' runs it
            done = poll(lambda: (t := api(port, "GET", f"/api/tasks/{task['id']}"))["status"] == "succeeded" and t)
            assert done["result"] == {"delivered": {"to": "a"}}

            [entry] = [e for e in api(port, "GET", "/api/cron")["cron"] if e["name"] == "mail-digest"]
            assert (entry["type"], entry["here"], entry["workers"]) == ("deliver_mail", False, [w["id"]])
            assert entry["next_fire"] > time.time() and entry["conflicts"] == []

            # The CLI without --app, straight to the store: the same defaults.
            out = subprocess.run(nexq_cmd("enqueue", "deliver_mail", *store, "--json"), cwd=ROOT, check=False,
                                 capture_output=True, text=True, timeout=60,
                                 env={**os.environ, "PYTHONPATH": ROOT})
            assert out.returncode == 0, out.stderr
            cli = json.loads(out.stdout)
            assert (cli["queue"], cli["max_retries"]) == ("mail", 0)
    finally:
        stop(worker)
