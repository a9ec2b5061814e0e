"""nexq doctor: findings with advice, exit 1 when something is wrong."""

from __future__ import annotations

import pytest

from nexq.cli.main import main
from tests.servers import redis_server


def test_doctor_passes_a_healthy_store(resp_url: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--store", resp_url, "--namespace", prefix.rstrip(":")]) in (0, 1)
    out = capsys.readouterr().out
    assert "OK    reachable" in out and "OK    commands" in out and "clock" in out


def test_doctor_on_the_embedded_store(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["doctor", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "journaled" in out and "FAIL" not in out


def test_doctor_names_a_wrong_password(capsys) -> None:  # type: ignore[no-untyped-def]
    with redis_server(password="right") as server:
        assert main(["doctor", "--store", f"redis://:wrong@127.0.0.1:{server.port}"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  credentials" in out and "password" in out


def test_doctor_names_an_unreachable_store(capsys) -> None:  # type: ignore[no-untyped-def]
    from tests.servers import free_port

    assert main(["doctor", "--store", f"redis://127.0.0.1:{free_port()}", "--store-timeout", "1"]) == 1
    assert "FAIL  reachable" in capsys.readouterr().out


def test_cli_errors_are_one_line_not_tracebacks(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nexq: nexq worker needs --app") and "Traceback" not in err
    assert main(["run", "--port", "99999"]) == 2
    assert "--port" in capsys.readouterr().err
    assert main(["enqueue", "t", "--payload", "{nope", "--store", "memory://"]) == 2
    assert "--payload" in capsys.readouterr().err
    assert main(["worker", "--store", "ftp://x"]) == 2
    assert "scheme" in capsys.readouterr().err


def test_bad_queue_weight_is_a_clear_cli_error(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["worker", "--store", "redis://127.0.0.1:1", "--queues", "mail:0,reports"]) == 2
    assert "--queues" in capsys.readouterr().err


@pytest.mark.slow  # runs the benchmark: seconds of work
def test_nexq_bench_reports_every_measurement(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["bench", "--tasks", "1000"]) == 0
    out = capsys.readouterr().out
    for row in ("enqueue, sequential", "enqueue, 100 in flight", "enqueue_many", "process no-op tasks", "pick-up latency"):
        assert f"| {row}" in out
    assert main(["bench", "--tasks", "10"]) == 2
    assert "--tasks" in capsys.readouterr().err
