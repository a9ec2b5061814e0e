"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/nexq-worker.service)
say what the real ``nexq`` accepts and run Pogocache the way Nexq needs.

No container engine runs here, so the files are parsed: every ``nexq``
command line in them goes through the real CLI's parser, the app they name
is loaded, and the commands that can run here (the image's health check, a
compose worker's command line) are run against real processes.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs

from nexq.cli.main import build_parser
from nexq.cli.options import load_app
from nexq.config import Settings
from tests.cli.helpers import clean_env, wait_for
from tests.runtime.procs import nexq_cmd, nexq_run, stop

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SETTINGS = set(attrs.fields_dict(Settings))


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / "nexq-worker.service").read_text())
    return parser


def accepted(argv: list[str]) -> Any:
    """The real CLI's parse of ``nexq ARGV`` (raises UsageError on anything it refuses)."""
    return build_parser().parse_args(argv)


def shell(entrypoint: list[str]) -> str:
    """The script of a ``/bin/sh -c SCRIPT`` entrypoint, with compose's ``$$`` unescaped."""
    assert entrypoint[:2] == ["/bin/sh", "-c"], entrypoint
    return entrypoint[2].replace("$$", "$")


def secret_read(script: str) -> list[str]:
    return re.findall(r"\$\(cat /run/secrets/([\w-]+)\)", script)


def nexq_services(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in c["services"].items()
            if "entrypoint" in s and 'exec nexq "$@"' in shell(s["entrypoint"])}


# -- Dockerfile --------------------------------------------------------------------


def test_the_image_is_slim_python_311_runs_nexq_as_a_user_and_checks_healthz() -> None:
    steps = dockerfile()
    words = [w for w, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    [user] = [rest for w, rest in steps if w == "USER"]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    created = " ".join(rest for w, rest in steps[: words.index("USER")] if w == "RUN")
    assert re.search(rf"useradd .*\b{user}$|useradd .*\b{user}\s", created), "the user is created before USER"
    assert words.index("USER") < words.index("ENTRYPOINT")  # nexq never runs as root
    [check] = [rest for w, rest in steps if w == "HEALTHCHECK"]
    assert "/healthz" in check
    [entry] = [json.loads(rest) for w, rest in steps if w == "ENTRYPOINT"]
    [cmd] = [json.loads(rest) for w, rest in steps if w == "CMD"]
    assert entry == ["nexq"] and accepted(cmd).command == "run"
    for w, rest in steps:
        if w == "COPY":
            *sources, _ = rest.split()
            assert all((ROOT / s).exists() for s in sources), rest
        if w == "ENV":
            names = re.findall(r"(\w+)=", rest)
            assert {n[5:].lower() for n in names if n.startswith("NEXQ_")} <= SETTINGS, names


@pytest.mark.slow
def test_the_image_health_check_passes_on_a_server_and_fails_without_one(tmp_path: Path) -> None:
    [check] = [rest for w, rest in dockerfile() if w == "HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3:].strip())
    assert command[0] == "python"
    argv = [sys.executable, *command[1:]]
    with nexq_run("--data-dir", str(tmp_path / "d"), log=str(tmp_path / "run.log")) as (proc, port):
        env = clean_env({"NEXQ_PORT": str(port)})
        assert subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode == 0
        stop(proc)
        assert subprocess.run(argv, env=env, capture_output=True, timeout=30, check=False).returncode != 0


# -- compose -------------------------------------------------------------------------


def test_compose_runs_pogocache_unevicting_persistent_and_with_a_password() -> None:
    c = compose()
    pogo = c["services"]["pogocache"]
    assert pogo["image"].startswith("pogocache/pogocache")
    script = shell(pogo["entrypoint"])
    args = shlex.split(re.sub(r'"\$\(cat (/run/secrets/[\w-]+)\)"', r"secret:\1", script))
    assert args[:2] == ["exec", "pogocache"]
    flags = dict(zip(args[2::2], args[3::2]))
    assert flags["--maxmemory"] == "unlimited"  # Pogocache evicts (pending tasks too) at its default
    assert flags["-h"] == "0.0.0.0" and flags["-p"] == "9401"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in pogo["volumes"]}
    persist = Path(flags["--persist"])
    assert str(persist.parent) in mounts and mounts[str(persist.parent)] in c["volumes"]  # on a named volume
    [secret] = secret_read(script)
    assert flags["--auth"] == f"secret:/run/secrets/{secret}"
    assert secret in pogo["secrets"] and "file" in c["secrets"][secret]


def test_compose_runs_the_api_without_workers_and_two_workers_with_valid_commands(
        monkeypatch: pytest.MonkeyPatch) -> None:
    c = compose()
    services = nexq_services(c)
    commands = {name: s["command"] for name, s in services.items()}
    parsed = {name: accepted(argv) for name, argv in commands.items()}
    runs = [n for n, a in parsed.items() if a.command == "run"]
    workers = [n for n, a in parsed.items() if a.command == "worker"]
    assert len(runs) == 1 and parsed[runs[0]].no_worker and len(workers) == 2
    assert all(services[w].get("healthcheck", {}).get("disable") for w in workers)  # no HTTP to check
    password = secret_read(shell(c["services"]["pogocache"]["entrypoint"]))[0]
    monkeypatch.syspath_prepend(str(DEPLOY))
    for name, s in services.items():
        script = shell(s["entrypoint"])
        # the store is the pogocache service, with the password it was started with
        [url] = re.findall(r"NEXQ_STORE=\"([^\"]+)\"", script)
        assert url == f"pogocache://:$(cat /run/secrets/{password})@pogocache:9401", url
        assert set(secret_read(script)) <= set(s["secrets"]) | {"nexq_api_token"} and password in s["secrets"]
        assert {k[5:].lower() for k in s["environment"] if k.startswith("NEXQ_")} <= SETTINGS
        # the app each one names is importable where compose mounts it (PYTHONPATH)
        [mount] = [v for v in s["volumes"] if v.startswith("./example_app.py:")]
        assert mount.split(":")[1] == s["environment"]["PYTHONPATH"] + "/example_app.py"
        assert (DEPLOY / "example_app.py").exists()
        assert sorted(load_app(parsed[name].app).handlers) == ["call_partner_api", "checksum", "send_email"]
    assert "nexq_api_token" in c["services"][runs[0]]["secrets"]  # the exposed API asks for a token


@pytest.mark.slow
def test_a_compose_worker_command_runs_the_example_app(resp_url: str, prefix: str, tmp_path: Path) -> None:
    # The worker command line exactly as compose gives it, against a real store.
    argv = next(s["command"] for s in nexq_services(compose()).values() if s["command"][0] == "worker")
    env = clean_env({"NEXQ_STORE": resp_url, "NEXQ_NAMESPACE": prefix.rstrip(":"),
                     "PYTHONPATH": f"{DEPLOY}{os.pathsep}{ROOT}"})
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(nexq_cmd(*argv), cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        done = {}
        for type, payload in (("send_email", {"to": "ada@example.com"}), ("checksum", "x")):
            r = subprocess.run(nexq_cmd("enqueue", type, "--payload", json.dumps(payload), "--json",
                                        "--app", "example_app:app"),
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
            assert r.returncode == 0, r.stderr
            done[type] = json.loads(r.stdout)["id"]

        def status(task_id: str) -> str:
            r = subprocess.run(nexq_cmd("tasks", "show", task_id, "--json"), cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=60, check=False)
            return str(json.loads(r.stdout)["status"]) if r.returncode == 0 else r.stderr

        wait_for(lambda: all(status(t) == "succeeded" for t in done.values()), 60, "the example tasks to succeed")
    finally:
        assert stop(worker) == 0, log.read_text()


# -- systemd ---------------------------------------------------------------------------


def test_the_systemd_unit_starts_a_valid_nexq_worker_as_a_user() -> None:
    u = unit()
    service = u["Service"]
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "nexq" and Path(argv[0]).is_absolute()  # systemd wants an absolute path
    args = accepted(argv[1:])
    assert args.command == "worker" and args.app
    assert service["User"] not in ("root", "0")
    # a stop lets running tasks finish: SIGTERM, and more time than their grace
    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > (args.shutdown_grace or 30)
    assert service["Restart"] in ("on-failure", "always")
    assert "EnvironmentFile" in service and u["Install"]["WantedBy"] == "multi-user.target"
    for assignment in service.get("Environment", "").split():
        assert assignment.split("=")[0][5:].lower() in SETTINGS


def test_the_readme_points_at_the_deployment_files() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deploy"):]
    section = section[: section.find("\n## ", 1) if "\n## " in section[1:] else len(section)]
    for path in ("Dockerfile", "deploy/compose.yaml", "deploy/nexq-worker.service", "deploy/example_app.py"):
        assert path in section and (ROOT / path).exists()
