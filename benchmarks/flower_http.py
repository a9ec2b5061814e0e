"""Nexq's ``POST /api/tasks`` beside Flower's ``POST /api/task/async-apply``
under wrk, with the raw-ASGI floor (issue 17, point 3).

    .venv/bin/python benchmarks/flower_http.py [--rounds 3] [--seconds 10] [--connections 32]
        [--pogocache-bin /tmp/pogo/pogocache] [--peers-python .venv-peers/bin/python] [--out-dir DIR]

Needs Debian's ``wrk`` and ``redis-server``, Celery and Flower in the peers'
venv (both in the ``bench-peers`` extra: ``.venv-peers/bin/pip install -e
'.[bench-peers]'``) and, for the Pogocache rows, a Pogocache binary
(skipped when absent). Every server is started here on a free loopback
port and stopped at the end:

- the floor: benchmarks/raw_asgi.py on Hypercorn-trio (as http_wrk.py);
- ``nexq run --no-worker`` with 1 API process on a throw-away redis-server,
  and with 1 and 2 API processes (``--api-processes 2``) on a throw-away
  Pogocache (``-h 127.0.0.1 -p PORT --maxmemory unlimited``);
- Flower 2 (Tornado) for a Celery app with one no-op task on its own
  redis-server, with ``--unauthenticated_api`` and
  ``FLOWER_UNAUTHENTICATED_API=true`` (Flower 2 answers API calls 401
  without auth otherwise), POSTing ``{"args": []}`` to
  ``/api/task/async-apply/bench.noop``; no Celery worker runs, so the
  messages stay queued in that redis-server (as Nexq's tasks stay pending).

Each round measures the floor right before every row (as http_wrk.py), and
records the 1-minute load average before each row: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import attrs
from common import machine_line, wait_port, write_results
from http_wrk import POST_LUA, ROOT, Sample, Server, measure, median_sample, nexq_argv, serve

from tests.servers import free_port, redis_server

FLOWER_LUA = """wrk.method = "POST"
wrk.body = '{"args": []}'
wrk.headers["Content-Type"] = "application/json"
"""
CELERY_APP = '''"""A Celery app with one no-op task, for Flower (written by flower_http.py)."""
from celery import Celery

app = Celery("bench", broker={broker!r})


@app.task(name="bench.noop")
def noop(*args, **kwargs):
    return None
'''


@attrs.frozen
class Row:
    name: str  # how the row is shown
    store: str  # "redis-server", "Pogocache"
    processes: int
    path: str


@contextmanager
def pogocache(binary: Path) -> Iterator[tuple[str, int]]:
    """A throw-away Pogocache on a free port: (URL, pid)."""
    port = free_port()
    proc = subprocess.Popen([str(binary), "-h", "127.0.0.1", "-p", str(port), "--maxmemory", "unlimited"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, "pogocache")  # type: ignore[arg-type]
        yield f"pogocache://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


Target = tuple[Row, Server, int, Path]  # row, its server, its store's pid, the Lua script


def run(args: argparse.Namespace) -> tuple[list[Row], dict[Row, list[tuple[Sample, Sample, float]]], list[Sample]]:
    samples: dict[Row, list[tuple[Sample, Sample, float]]] = {}
    floors: list[Sample] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nexq-flower-")))
        post, flower_lua = tmp / "post.lua", tmp / "flower.lua"
        post.write_text(POST_LUA)
        flower_lua.write_text(FLOWER_LUA)
        floor = stack.enter_context(serve(
            [sys.executable, "-m", "hypercorn", "-k", "trio", "-b", "127.0.0.1:{port}", "raw_asgi:app"],
            source=ROOT / "benchmarks", probe="/", log=tmp / "floor.log"))
        targets: list[Target] = []
        redis = stack.enter_context(redis_server())
        assert redis.proc is not None
        stores = [("redis-server", redis.url, redis.proc.pid, (1,))]
        if args.pogocache_bin and Path(args.pogocache_bin).exists():
            url, pid = stack.enter_context(pogocache(Path(args.pogocache_bin)))
            stores.append(("Pogocache", url, pid, (1, 2)))
        else:
            print(f"no Pogocache binary at {args.pogocache_bin}: its rows are skipped", file=sys.stderr)
        for store, url, pid, counts in stores:
            for n in counts:
                ns = f"wrk{len(targets)}"
                server = stack.enter_context(serve(nexq_argv(url, n, tmp / ns, ns), source=ROOT, probe="/healthz",
                                                   log=tmp / f"{ns}.log", processes=n))
                targets.append((Row("Nexq POST /api/tasks", store, n, "/api/tasks"), server, pid, post))
        flower_redis = stack.enter_context(redis_server())
        assert flower_redis.proc is not None
        (tmp / "flower_app.py").write_text(CELERY_APP.format(broker=flower_redis.url))
        celery = str(Path(args.peers_python).parent / "celery")
        flower = stack.enter_context(serve(
            [celery, "-A", "flower_app", "flower", "--address=127.0.0.1", "--port={port}",
             "--unauthenticated_api", "--logging=warning"],
            source=tmp, probe="/healthcheck", log=tmp / "flower.log"))
        targets.append((Row("Flower POST /api/task/async-apply", "redis-server", 1,
                            "/api/task/async-apply/bench.noop"), flower, flower_redis.proc.pid, flower_lua))
        warm = argparse.Namespace(**{**vars(args), "seconds": min(2.0, args.seconds)})
        for row, server, pid, script in targets:  # warm-up: connections, code paths, first tasks
            s = measure(server, row.path, script, warm, pid)
            if s.errors:
                log = (tmp / "flower.log").read_text()[-2000:] if "Flower" in row.name else ""
                raise RuntimeError(f"{row.name} on {row.store}: {s.errors} errors in the warm-up\n{log}")
        for r in range(args.rounds):
            for row, server, pid, script in targets:
                load = load1()
                floors.append(measure(floor, "/", post, args, None))
                sample = measure(server, row.path, script, args, pid)
                samples.setdefault(row, []).append((sample, floors[-1], load))
                print(f"round {r + 1}: {row.name} {row.store} x{row.processes}: {sample.rps:,.0f}/s "
                      f"p99 {sample.p99:.1f} ms (floor {floors[-1].rps:,.0f}/s, load {load:.2f})", file=sys.stderr)
        rows = [t[0] for t in targets]
    return rows, samples, floors


def ratio_line(what: str, per_round: list[float]) -> str:
    return (f"- {what}: **{statistics.median(per_round):.2f}x** "
            f"(rounds: {', '.join(f'{x:.2f}' for x in per_round)})")


def table(rows: list[Row], samples: dict[Row, list[tuple[Sample, Sample, float]]], floors: list[Sample]) -> str:
    lines = [("| request | store | API processes | req/s | p50 ms | p99 ms | of floor | errors | server CPU µs/req "
              "| wrk CPU µs/req | store CPU µs/req | 1-min load before |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def line(name: str, store: str, n: str, ss: list[Sample], ratio: str, loads: str) -> str:
        m = median_sample(ss)
        st = f"{m.redis_us:.0f}" if m.redis_us is not None else ""
        return (f"| {name} | {store} | {n} | {m.rps:,.0f} | {m.p50:.1f} | {m.p99:.1f} | {ratio} "
                f"| {sum(s.errors for s in ss)} | {m.server_us:.0f} | {m.wrk_us:.0f} | {st} | {loads} |")

    lines.append(line("POST / (raw ASGI, Hypercorn-trio)", "-", "1", floors, "100%", ""))
    for row in rows:
        triples = samples[row]
        ratio = statistics.median(s.rps / f.rps for s, f, _ in triples)
        loads = ", ".join(f"{x:.1f}" for _, _, x in triples)
        lines.append(line(row.name, row.store, str(row.processes), [s for s, _, _ in triples], f"{ratio:.0%}", loads))

    def rps(name: str, store: str, n: int) -> list[float] | None:
        for row in rows:
            if row.name.startswith(name) and row.store == store and row.processes == n:
                return [s.rps for s, _, _ in samples[row]]
        return None

    out = ["", "Ratios, round by round (each row against the one measured in the same round):", ""]
    one_redis = rps("Nexq", "redis-server", 1)
    one_pogo, two_pogo, flower = rps("Nexq", "Pogocache", 1), rps("Nexq", "Pogocache", 2), rps("Flower", "redis-server", 1)
    for row in rows:
        if row.name.startswith("Nexq") and row.processes == 1:
            out.append(ratio_line(f"Nexq POST /api/tasks, 1 process, {row.store}, over the raw-ASGI floor "
                                  "measured just before it", [s.rps / f.rps for s, f, _ in samples[row]]))
    if one_pogo and two_pogo:
        out.append(ratio_line("2 API processes over 1, Pogocache", [b / a for a, b in zip(one_pogo, two_pogo)]))
    if two_pogo and flower:
        out.append(ratio_line("2 API processes on Pogocache over Flower", [b / a for a, b in zip(flower, two_pogo)]))
    for label, ones in (("Pogocache", one_pogo), ("redis-server", one_redis)):
        if ones and flower:
            out.append(ratio_line(f"1 API process on {label} over Flower", [b / a for a, b in zip(flower, ones)]))
    return "\n".join(lines + out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="wrk -d per measurement (default 10)")
    ap.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every row (default 3); medians shown")
    ap.add_argument("--pogocache-bin", default="/tmp/pogo/pogocache", help="Pogocache binary (rows skipped if absent)")
    ap.add_argument("--peers-python", default=str(ROOT / ".venv-peers" / "bin" / "python"),
                    help="python of the venv with celery and flower (default .venv-peers)")
    ap.add_argument("--out-dir", help="also write the table and the samples (JSON) there")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    peers = Path(args.peers_python)
    if subprocess.run([str(peers), "-c", "import celery, flower"], capture_output=True, check=False).returncode:
        sys.exit(f"{peers} cannot import celery and flower ({peers.parent}/pip install 'celery[redis]' flower)")
    flower_version = subprocess.run([str(peers), "-c", "import flower, celery; print(flower.__version__, celery.__version__)"],
                                    capture_output=True, text=True, check=True).stdout.split()
    started, load0 = time.time(), load1()
    rows, samples, floors = run(args)
    command = "python benchmarks/flower_http.py " + " ".join(sys.argv[1:])
    md = (f"`{command}` ({machine_line()}; wrk -t1 -c{args.connections} -d{args.seconds:g}s, "
          f"{args.rounds} round(s), medians; Flower {flower_version[0]}, Celery {flower_version[1]}; "
          f"{time.time() - started:.0f} s; 1-minute load {load0:.2f} at the start, {load1():.2f} at the end)\n\n"
          + table(rows, samples, floors))
    if args.out_dir:
        doc: dict[str, Any] = {
            "command": command, "machine": machine_line(), "load_start": load0, "load_end": load1(),
            "flower": flower_version, "floor": [attrs.asdict(f) for f in floors],
            "rows": [{**attrs.asdict(row), "samples": [{**attrs.asdict(s), "load1": x} for s, _, x in samples[row]]}
                     for row in rows]}
        write_results(args.out_dir, time.strftime("http-wrk-flower-%Y-%m-%d"), doc, md)
    else:
        print(md)


if __name__ == "__main__":
    os.environ.pop("PYTHONPATH", None)
    os.environ["FLOWER_UNAUTHENTICATED_API"] = "true"  # Flower 2 needs it besides --unauthenticated_api
    main()
