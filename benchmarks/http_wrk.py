"""The HTTP API under wrk: requests/s and p50/p99 latency at 32 connections.

    .venv/bin/python benchmarks/http_wrk.py [--seconds 10] [--connections 32] [--rounds 3]
        [--before REV] [--pogocache-bin PATH] [--stores embedded,redis-server,pogocache]
        [--no-healthz] [--out-dir DIR]

Starts every server itself on free loopback ports and drives each with
``wrk -t1 -c32 -d10s --latency`` (Debian package ``wrk``; POST bodies from a
Lua script: ``{"type": "bench.noop", "payload": {"n": 1}}``):

- the floor: a 10-line ASGI app (benchmarks/raw_asgi.py) on Hypercorn-trio,
  answering every request with 201 and a small JSON body; also measured as
  a row on the Hypercorn the API runs (its keep-alive idle timer replaced,
  nexq.api.idle_timer: benchmarks/raw_asgi_idle.py);
- ``nexq run --no-worker`` on the embedded store: ``POST /api/tasks`` and
  ``GET /healthz``;
- on a throw-away redis-server: ``POST /api/tasks`` with 1 and 2 API
  processes (``--api-processes 2``) and ``GET /healthz``;
- with ``--pogocache-bin PATH``, the same on a throw-away Pogocache
  (``PATH -h 127.0.0.1 -p PORT --maxmemory unlimited``).

``--stores`` picks the stores measured, ``--no-healthz`` leaves out the
``GET /healthz`` rows.

``--before REV`` also runs the Nexq rows on the code of commit REV (``git
archive`` into a temporary directory, run with PYTHONPATH pointing there),
each round interleaved with the current code's rows, so both meet the same
machine load. Every round runs the floor first; "of floor" is a row's
requests/s over that round's floor. Reported per row: the median over the
rounds (latencies of the median round) and the CPU each request cost in the
server processes, in wrk and in the store server (from /proc), which says what
bounds a row when the load generator shares the cores.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
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
import httpx
from common import machine_line, wait_port, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, redis_server

POST_LUA = """wrk.method = "POST"
wrk.body = '{"type": "bench.noop", "payload": {"n": 1}}'
wrk.headers["Content-Type"] = "application/json"
"""
TICKS = os.sysconf("SC_CLK_TCK")


@attrs.frozen
class Row:
    name: str  # how the row is shown
    code: str  # "now" or "REV"
    store: str  # "-", "embedded", "redis-server", "pogocache"
    processes: int
    path: str  # what wrk requests


@attrs.define
class Server:
    proc: subprocess.Popen[bytes]
    port: int


@attrs.frozen
class Sample:
    rps: float
    p50: float  # ms
    p99: float
    errors: int
    server_us: float  # CPU µs per request, all server processes
    wrk_us: float
    redis_us: float | None  # the store server's (redis-server or Pogocache)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live children (Linux /proc)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(c) for c in text.split()]


def wait_ready(server: Server, path: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{server.port}{path}", timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {server.port} did not answer within {limit:g} s")


@contextmanager
def serve(argv: list[str], *, source: Path, probe: str, log: Path, processes: int = 1,
          pythonpath: str | None = None) -> Iterator[Server]:
    """Run ``argv`` (its port filled in for ``{port}``) in ``source`` with
    ``pythonpath`` (default: ``source``) first on the import path until the
    block ends; waits until it answers ``probe``."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": pythonpath or str(source)}
    env = {k: v for k, v in env.items() if not k.startswith("NEXQ_")}
    with open(log, "ab") as out:
        proc = subprocess.Popen([a.format(port=port) for a in argv], cwd=source, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc, port)
    try:
        wait_ready(server, probe)
        deadline = time.monotonic() + 30
        while len(children(proc.pid)) < processes - 1 and time.monotonic() < deadline:
            time.sleep(0.1)  # the API children: bound once they run (SO_REUSEPORT)
        time.sleep(1.0 if processes > 1 else 0)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(url: str, seconds: float, connections: int, lua: Path | None) -> tuple[str, float]:
    """wrk's report and its CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", *(["-s", str(lua)] if lua else []), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def measure(server: Server, path: str, lua: Path | None, args: argparse.Namespace, redis_pid: int | None) -> Sample:
    url = f"http://127.0.0.1:{server.port}{path}"
    cpu0 = cpu_seconds(server.proc.pid)
    redis0 = cpu_seconds(redis_pid) if redis_pid else 0.0
    out, wrk_cpu = wrk(url, args.seconds, args.connections, lua)
    server_cpu = cpu_seconds(server.proc.pid) - cpu0
    redis_cpu = cpu_seconds(redis_pid) - redis0 if redis_pid else None
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = dict(re.findall(r"^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$", out, re.MULTILINE))
    if set(latency) != {"50", "99"}:
        raise RuntimeError(f"no latency distribution in wrk's report:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
    per = 1e6 / max(done, 1)
    return Sample(rps, _ms(latency["50"]), _ms(latency["99"]), errors, server_cpu * per, wrk_cpu * per,
                  redis_cpu * per if redis_cpu is not None else None)


def nexq_argv(store: str | None, processes: int, data_dir: Path, namespace: str) -> list[str]:
    argv = [sys.executable, "-m", "nexq.cli.main", "run", "--no-worker", "--host", "127.0.0.1", "--port", "{port}",
            "--log-level", "warning", "--namespace", namespace]
    argv += ["--store", store] if store else ["--data-dir", str(data_dir)]
    return argv + (["--api-processes", str(processes)] if processes > 1 else [])


def export(rev: str, into: Path) -> Path:
    """The sources of commit ``rev`` in ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


Pairs = list[tuple[Sample, Sample]]  # a row's sample and the floor's measured just before


@contextmanager
def pogocache(binary: str, log: Path) -> Iterator[tuple[str, int]]:
    """A throw-away Pogocache from ``binary`` on a free port: (store URL, pid)."""
    port = free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen([binary, "-h", "127.0.0.1", "-p", str(port), "--maxmemory", "unlimited"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, f"Pogocache ({binary})")
        yield f"pogocache://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def row_plan(stores: list[str], healthz: bool) -> list[tuple[str, int, str]]:
    """(store, API processes, path) of every Nexq row, in the order run."""
    plan = []
    for store in stores:
        plan.append((store, 1, "/api/tasks"))
        if store != "embedded":  # the embedded store is one process's
            plan.append((store, 2, "/api/tasks"))
        if healthz:
            plan.append((store, 1, "/healthz"))
    return plan


def run(args: argparse.Namespace) -> tuple[list[Row], dict[Row, Pairs], list[Sample]]:
    rows: list[Row] = []
    samples: dict[Row, Pairs] = {}
    floors: list[Sample] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nexq-wrk-")))
        lua = tmp / "post.lua"
        lua.write_text(POST_LUA)
        stores: dict[str, tuple[str | None, int | None]] = {"embedded": (None, None)}
        if "redis-server" in args.stores:
            redis = stack.enter_context(redis_server())
            assert redis.proc is not None
            stores["redis-server"] = (redis.url, redis.proc.pid)
        if "pogocache" in args.stores:
            stores["pogocache"] = stack.enter_context(pogocache(args.pogocache_bin, tmp / "pogocache.log"))
        sources = [("now", ROOT)]
        if args.before:
            sources.insert(0, (args.before, export(args.before, Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="nexq-before-"))))))
        floor = stack.enter_context(serve(
            [sys.executable, "-m", "hypercorn", "-k", "trio", "-b", "127.0.0.1:{port}", "raw_asgi:app"],
            source=ROOT / "benchmarks", probe="/", log=tmp / "floor.log"))
        servers: list[tuple[Row, Server, int | None, Path | None]] = []
        if (ROOT / "nexq" / "api" / "idle_timer.py").exists():
            env_path = f"{ROOT / 'benchmarks'}{os.pathsep}{ROOT}"
            patched = stack.enter_context(serve(
                [sys.executable, "-m", "hypercorn", "-k", "trio", "-b", "127.0.0.1:{port}", "raw_asgi_idle:app"],
                source=ROOT / "benchmarks", probe="/", log=tmp / "floor-idle.log", pythonpath=env_path))
            servers.append((Row("POST / (raw ASGI, API's idle timer)", "now", "-", 1, "/"), patched, None, lua))
        for n, (code, source) in enumerate(sources):
            several = "api_processes" in (source / "nexq" / "config.py").read_text()
            for store, processes, path in row_plan(args.stores, args.healthz):
                if processes > 1 and not several:
                    continue
                ns = f"wrk{n}{len(servers)}"
                url, store_pid = stores[store]
                server = stack.enter_context(serve(
                    nexq_argv(url, processes, tmp / ns, ns), source=source, probe="/healthz",
                    log=tmp / f"{ns}.log", processes=processes))
                method = "POST" if path == "/api/tasks" else "GET"
                row = Row(f"{method} {path}", code, store, processes, path)
                servers.append((row, server, store_pid, lua if method == "POST" else None))
        warm = argparse.Namespace(**{**vars(args), "seconds": min(2.0, args.seconds)})
        for row, server, pid, script in servers:  # warm-up: connections, code paths, first tasks
            measure(server, row.path, script, warm, pid)
        for r in range(args.rounds):
            for row, server, pid, script in servers:
                # The floor right before each row: the machine's load drifts.
                floors.append(measure(floor, "/", lua, args, None))
                sample = measure(server, row.path, script, args, pid)
                samples.setdefault(row, []).append((sample, floors[-1]))
                print(f"round {r + 1}: {row.code} {row.name} {row.store} x{row.processes}: {sample.rps:,.0f}/s "
                      f"p99 {sample.p99:.1f} ms (floor {floors[-1].rps:,.0f}/s, load {load_average()})",
                      file=sys.stderr)
        rows = [row for row, *_ in servers]
    return rows, samples, floors


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages (the machine is shared)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def table(rows: list[Row], samples: dict[Row, Pairs], floors: list[Sample]) -> str:
    head = ("| code | request | store | API processes | req/s | p50 ms | p99 ms | of floor | errors "
            "| server CPU µs/req | wrk CPU µs/req | store CPU µs/req |")
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def line(code: str, name: str, store: str, processes: str, ss: list[Sample], ratio: str) -> str:
        m = median_sample(ss)
        redis = f"{m.redis_us:.0f}" if m.redis_us is not None else ""
        return (f"| {code} | {name} | {store} | {processes} | {m.rps:,.0f} | {m.p50:.1f} | {m.p99:.1f} | {ratio} "
                f"| {sum(s.errors for s in ss)} | {m.server_us:.0f} | {m.wrk_us:.0f} | {redis} |")

    lines.append(line("", "POST / (raw ASGI, Hypercorn-trio)", "-", "1", floors, "100%"))
    for row in rows:
        pairs = samples[row]
        ratio = statistics.median(s.rps / f.rps for s, f in pairs)
        lines.append(line(row.code, row.name, row.store, str(row.processes), [s for s, _ in pairs], f"{ratio:.0%}"))
    lines.append("")
    for code in dict.fromkeys(row.code for row in rows):
        for store in dict.fromkeys(row.store for row in rows):
            posts = [[s.rps for s, _ in samples[row]] for row in rows
                     if row.code == code and row.store == store and row.path == "/api/tasks"]
            if len(posts) == 2:  # 1 and 2 API processes
                per = [b / a for a, b in zip(*posts)]
                lines.append(f"{code}: 2 API processes over 1 on {store}, POST /api/tasks: "
                             f"{statistics.median(per):.2f}x (rounds: {', '.join(f'{x:.2f}' for x in per)})  ")
    return "\n".join(lines) + "\n"


def median_sample(samples: list[Sample]) -> Sample:
    return sorted(samples, key=lambda s: s.rps)[len(samples) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="wrk -d per measurement (default 10)")
    ap.add_argument("--connections", type=int, default=32, help="wrk -c (default 32)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of every row (default 1); medians shown")
    ap.add_argument("--before", metavar="REV", help="also run the Nexq rows on the code of this commit")
    ap.add_argument("--pogocache-bin", metavar="PATH", help="also measure on a Pogocache run from this binary")
    ap.add_argument("--stores", default=None,
                    help="comma-separated stores to measure, of embedded, redis-server, pogocache (default: "
                         "embedded and redis-server, and pogocache with --pogocache-bin)")
    ap.add_argument("--no-healthz", dest="healthz", action="store_false", help="leave out the GET /healthz rows")
    ap.add_argument("--out-dir", help="also write the table and the samples (JSON) there")
    ap.add_argument("--name", default="http-wrk-%Y-%m-%d",
                    help="file name (strftime pattern, no suffix) of the results in --out-dir")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    known = ["embedded", "redis-server", "pogocache"]
    if args.stores is None:
        args.stores = known if args.pogocache_bin else known[:2]
    else:
        args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
        unknown = [s for s in args.stores if s not in known]
        if unknown or not args.stores:
            sys.exit(f"--stores: {', '.join(unknown) or 'none given'}: not one of {', '.join(known)}")
    if "pogocache" in args.stores and not args.pogocache_bin:
        sys.exit("--stores pogocache needs --pogocache-bin PATH (a Pogocache binary)")
    if args.pogocache_bin and not os.access(args.pogocache_bin, os.X_OK):
        sys.exit(f"--pogocache-bin: {args.pogocache_bin} is not an executable file")
    rows, samples, floors = run(args)
    command = "python benchmarks/http_wrk.py " + " ".join(sys.argv[1:])
    md = (f"`{command}` ({machine_line()}; wrk -t1 -c{args.connections} -d{args.seconds:g}s, "
          f"{args.rounds} round(s), medians; load average at the end {load_average()})\n\n"
          + table(rows, samples, floors))
    if args.out_dir:
        doc: dict[str, Any] = {"floor": [attrs.asdict(f) for f in floors], "rows": [
            {**attrs.asdict(row), "samples": [attrs.asdict(s) for s, _ in samples[row]]} for row in rows]}
        write_results(args.out_dir, time.strftime(args.name), doc, md)
    else:
        print(md)


if __name__ == "__main__":
    main()
