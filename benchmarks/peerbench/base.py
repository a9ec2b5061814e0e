"""What every peer runner shares: sizes, progress, deadlines, worker process
groups, latency records and statistics.

A runner runs in its own child process (started by benchmarks/peers.py) and
prints nothing on stdout; progress goes to stderr, results to a JSON file.
Worker processes are started in their own session so that the whole group
(prefork children included) is killed at the end, whatever happens.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Environment the worker processes read (set by run.py before anything else).
ENV_REDIS = "PEERBENCH_REDIS"      # redis://127.0.0.1:PORT of the server under test
ENV_LATDIR = "PEERBENCH_LATDIR"    # where `mark` handlers append their start times
ENV_PIDFILE = "PEERBENCH_PIDFILE"  # worker process groups, for peers.py to kill if a runner dies


@attrs.frozen
class Sizes:
    seq: int = 2_000          # enqueue, one at a time
    conc: int = 2_000         # enqueue, `inflight` at a time
    inflight: int = 100
    bulk: int = 10_000        # bulk enqueue, batches of `batch`
    batch: int = 1_000
    e2e: int = 5_000          # enqueue + process, workers in other processes
    rate: float = 200.0       # pick-up latency: open-loop rate (tasks/s) ...
    duration: float = 10.0    # ... for this many seconds
    warmup: int = 20


class Deadline(Exception):
    """A loop ran past its deadline."""


def check(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise Deadline(f"{what}: deadline passed")


class Progress:
    """One progress line on stderr (rewritten in place on a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, what: str, done: int | None = None, total: int | None = None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < (0.25 if self.tty else 3.0):
            return
        self.last = now
        count = f" {done}/{total}" if total else (f" {done}" if done is not None else "")
        line = f"[{self.label}] {what}{count}"
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self, what: str) -> None:
        self(what, force=True)
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


# -- worker processes ---------------------------------------------------------------


class Workers:
    """Worker processes started in their own sessions; stop() kills the groups."""

    def __init__(self, logdir: str, env: dict[str, str] | None = None) -> None:
        self.logdir = logdir
        self.env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.procs: list[tuple[subprocess.Popen[bytes], str]] = []

    def start(self, cmd: Sequence[str], name: str) -> None:
        log = os.path.join(self.logdir, f"{name}-{len(self.procs)}.log")
        with open(log, "wb") as out:
            p = subprocess.Popen(list(cmd), cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append((p, log))
        if os.environ.get(ENV_PIDFILE):
            with open(os.environ[ENV_PIDFILE], "a") as f:
                f.write(f"{p.pid}\n")

    def pids(self) -> list[int]:
        return [p.pid for p, _ in self.procs]

    def check_alive(self) -> None:
        for p, log in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker {p.args!r} exited with {p.returncode}: {tail(log)}")

    def stop(self, grace: float = 5.0) -> None:
        for p, _ in self.procs:
            _signal_group(p, signal.SIGTERM)
        end = time.monotonic() + grace
        for p, _ in self.procs:
            try:
                p.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(p, signal.SIGKILL)  # children (prefork, pools) too
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()


def _signal_group(p: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: str, n: int = 600) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
        return data[-n:].decode(errors="replace")
    except OSError:
        return ""


# -- pick-up latency records -------------------------------------------------------------

_fd: tuple[int, int] | None = None  # (pid, fd): reopened after a fork


def record_start(t_intended: float) -> None:
    """Called first thing by every `mark` handler: append (intended enqueue
    time, handler start time) to this process's file in $PEERBENCH_LATDIR."""
    now = time.time()
    global _fd
    pid = os.getpid()
    if _fd is None or _fd[0] != pid:
        path = os.path.join(os.environ[ENV_LATDIR], f"lat-{pid}.txt")
        _fd = (pid, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    os.write(_fd[1], f"{float(t_intended)!r} {now!r}\n".encode())


def read_latencies(latdir: str) -> list[float]:
    out = []
    for path in glob.glob(os.path.join(latdir, "lat-*.txt")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    out.append(float(parts[1]) - float(parts[0]))
    return out


def clear_latencies(latdir: str) -> None:
    for path in glob.glob(os.path.join(latdir, "lat-*.txt")):
        os.unlink(path)


def latency_stats(lat: list[float], sent: int) -> dict[str, Any]:
    lat = sorted(lat)
    if not lat:
        return {"sent": sent, "received": 0}

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] * 1000

    return {"sent": sent, "received": len(lat), "p50_ms": pct(50), "p90_ms": pct(90),
            "p99_ms": pct(99), "max_ms": lat[-1] * 1000, "min_ms": lat[0] * 1000}


def rate(n: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"n": n, "seconds": seconds, "per_s": n / seconds if seconds > 0 else None, **extra}


def wait_until(pred: Callable[[], bool], timeout: float, what: str, every: float = 0.01,
               progress: Callable[[], None] | None = None) -> None:
    end = time.monotonic() + timeout
    while not pred():
        check(end, what)
        if progress:
            progress()
        time.sleep(every)


class ResultsDbPeer:
    """A peer whose broker is redis db 0 and whose workers store every
    result in db 1, so results stored = tasks done (Celery, Dramatiq)."""

    kind = "sync"

    def __init__(self, url: str) -> None:
        from redis import Redis

        self.url = url
        self.redis = Redis.from_url(url + "/0")
        self.results = Redis.from_url(url + "/1")

    def reset(self) -> None:
        self.redis.flushall()

    def done(self) -> int:
        return int(self.results.dbsize())

    def close(self) -> None:
        self.redis.close()
        self.results.close()
