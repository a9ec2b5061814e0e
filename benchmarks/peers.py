"""Nexq beside other Python task queues: the same workloads, same machine, one run.

    make bench-peers                                   # venv .venv-peers, then this
    .venv-peers/bin/python benchmarks/peers.py [--peers nexq,rq,...]
        [--pogocache pogocache://127.0.0.1:9401] [--quick] [--e2e N] [--budget S]

Queues: Nexq (a redis-server, optionally a Pogocache: its public API and
`nexq worker` processes, plus its in-process engine figures; the embedded
store: engine figures only), arq, SAQ, RQ, Celery, Dramatiq, Huey, each on a
fresh redis-server this script starts on a free loopback port. Each queue
runs in its own child process (benchmarks/peerbench/run.py) with a
deadline; its worker processes are killed at the end, and so is every
server started here. Scenarios and settings: benchmarks/README.md.
Results: benchmarks/results/peers-<date>.json and .md (throughput, CPU of
every process per 1,000 tasks, latency, ratios to the best peer, targets);
the tables are printed too.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from typing import Any

import attrs

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from benchmarks.common import local_redis, machine_line, write_results  # noqa: E402
from benchmarks.peerbench.base import Sizes  # noqa: E402
from benchmarks.peerbench.report import markdown, merge_repeats  # noqa: E402

PEERS = ("nexq", "arq", "saq", "rq", "celery", "dramatiq", "huey")
QUICK = {"seq": 300, "conc": 300, "bulk": 2000, "e2e": 1000, "duration": 3.0}


def log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def targets(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(label, peer, store): store is 'memory', 'redis' (a fresh server) or a URL."""
    out = []
    for peer in args.peers.split(","):
        if peer == "nexq":
            out.append(("nexq (embedded)", "nexq", "memory"))
            out.append(("nexq (redis-server)", "nexq", "redis"))
            if args.pogocache:
                out.append(("nexq (pogocache)", "nexq", args.pogocache))
        else:
            out.append((peer, peer, "redis"))
    return out


def kill_groups(pidfile: str) -> None:
    """Kill the worker process groups a runner started (if it died without)."""
    try:
        with open(pidfile) as f:
            pids = [int(x) for x in f.read().split()]
    except OSError:
        return
    for pid in pids:
        try:
            if os.getpgid(pid) == pid:  # still the leader of the session we made
                os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def run_one(label: str, peer: str, store: str, sizes: dict[str, Any], timeout: float,
            tmp: str) -> dict[str, Any]:
    if peer != "nexq" and importlib.util.find_spec(peer) is None:
        return {"peer": peer, "label": label, "skipped": f"{peer} is not installed (make bench-peers)"}
    out_file = tempfile.mktemp(prefix=label.replace(" ", "_").replace("(", "").replace(")", "") + "-",
                               suffix=".json", dir=tmp)
    pidfile = out_file + ".pids"
    with ExitStack() as stack:
        if store == "redis":
            url = stack.enter_context(local_redis())
        else:
            url = "memory://" if store == "memory" else store
        cmd = [sys.executable, "-m", "benchmarks.peerbench.run", peer, "--store", url, "--label", label,
               "--out", out_file, "--sizes", json.dumps(sizes)]
        if peer == "nexq" and store not in ("memory", "redis"):
            cmd.append("--drain")  # a shared server: leave nothing queued there
        env = {**os.environ, "PEERBENCH_PIDFILE": pidfile,
               "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"[{label}] over its {timeout:.0f} s: stopping it")
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        finally:
            kill_groups(pidfile)
    try:
        with open(out_file) as f:
            res = json.load(f)
    except (OSError, ValueError):
        res = {"peer": peer, "error": f"the runner left no result (exit {proc.returncode})", "results": {}}
    res["label"] = label
    res["backend"] = {"memory": "embedded (memory://)", "redis": "redis-server"}.get(store, store)
    return res


def redis_version() -> str:
    from tests.servers import find_redis_server

    try:
        v = subprocess.run([find_redis_server(), "--version"], capture_output=True, text=True, timeout=10).stdout
        return "redis-server " + v.split("v=")[1].split()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "redis-server (version unknown)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated, from " + ",".join(PEERS))
    ap.add_argument("--pogocache", help="also run Nexq on this (shared) Pogocache, e.g. redis://127.0.0.1:9401")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    for name, help_ in (("seq", "sequential enqueues (20000)"), ("conc", "enqueues with --inflight (20000)"),
                        ("inflight", "in flight (100)"), ("bulk", "bulk enqueues (20000)"),
                        ("batch", "bulk batch size (1000)"), ("e2e", "tasks processed end to end (20000)"),
                        ("rate", "latency: tasks/s (100)"), ("duration", "latency: seconds (10)")):
        ap.add_argument(f"--{name}", type=float if name in ("rate", "duration") else int, help=help_)
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds (every queue once per round); the report shows medians (3)")
    ap.add_argument("--peer-timeout", type=float, default=240, help="seconds per queue (240)")
    ap.add_argument("--budget", type=float, default=2700,
                    help="seconds for the whole run; what is left past it is skipped (2700)")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    for p in args.peers.split(","):
        if p not in PEERS:
            ap.error(f"unknown peer {p!r}")

    sizes: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("seq", "conc", "inflight", "bulk", "batch", "e2e", "rate", "duration"):
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)

    full_sizes = attrs.asdict(Sizes(**sizes))  # fails here, not in every runner, on a bad size
    started, t0, load0 = datetime.datetime.now(), time.monotonic(), os.getloadavg()[0]
    exe = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT + os.sep) else "python"
    command = f"{exe} benchmarks/peers.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    runs = []
    todo = [(rnd, *t) for rnd in range(1, args.repeat + 1) for t in targets(args)]
    with tempfile.TemporaryDirectory(prefix="peerbench-") as tmp:
        for k, (rnd, label, peer, store) in enumerate(todo, 1):
            left = args.budget - (time.monotonic() - t0)
            head = f"== [{k}/{len(todo)}] round {rnd}/{args.repeat}: {label}"
            if left < 30:
                log(f"{head}: skipped, the {args.budget:.0f} s budget is spent")
                runs.append({"peer": peer, "label": label, "round": rnd, "skipped": "time budget spent"})
                continue
            log(f"{head} (elapsed {time.monotonic() - t0:.0f} s)")
            res = run_one(label, peer, store, sizes, min(args.peer_timeout, left), tmp)
            res["round"] = rnd
            runs.append(res)
    elapsed = time.monotonic() - t0
    doc = {"machine": machine_line(), "redis_server": redis_version(), "started": started.isoformat(timespec="seconds"),
           "seconds": elapsed, "command": command,
           "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)], "sizes": full_sizes, "repeat": args.repeat,
           "runs": runs}
    doc["summary"] = merge_repeats(runs)  # what the tables show: medians per queue and scenario
    write_results(args.out_dir, f"peers-{started:%Y-%m-%d}", doc, markdown(doc))
    log(f"wrote peers-{started:%Y-%m-%d}.json and .md in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
