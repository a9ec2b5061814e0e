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
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Environment the worker processes read (set by run.py before anything else).
ENV_REDIS = "PEERBENCH_REDIS"      # redis://127.0.0.1:PORT of the server under test
ENV_LATDIR = "PEERBENCH_LATDIR"    # where `mark` handlers append their start times
ENV_PIDFILE = "PEERBENCH_PIDFILE"  # worker process groups, for peers.py to kill if a runner dies
ENV_DONE_KEY = "PEERBENCH_DONE_KEY"  # the counter every no-op job increments (default peerbench:done)


@attrs.frozen
class Sizes:
    seq: int = 20_000         # enqueue, one at a time
    conc: int = 20_000        # enqueue, `inflight` at a time
    inflight: int = 100
    bulk: int = 20_000        # bulk enqueue, batches of `batch`
    batch: int = 1_000
    e2e: int = 20_000         # enqueue + process, workers in other processes
    rate: float = 100.0       # pick-up latency: open-loop rate (tasks/s) ...
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
        kill_sessions(self.pids())  # children in process groups of their own (nexq --processes)
        self.procs.clear()


def kill_sessions(sids: Sequence[int]) -> None:
    """SIGKILL every process left in sessions ``sids`` (ours: we started their leaders)."""
    wanted = set(sids)
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                data = f.read()
            if int(data[data.rindex(")") + 2:].split()[3]) in wanted:
                os.kill(int(path.split("/")[2]), signal.SIGKILL)
        except (OSError, ValueError):
            continue


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


def open_loop(sizes: Sizes) -> Iterator[tuple[int, int, float]]:
    """The latency scenario's schedule: (k, total, seconds to wait before
    sending mark k), ``sizes.rate`` marks a second for ``sizes.duration`` s,
    the wait computed when asked (just before the caller sleeps)."""
    total = int(sizes.rate * sizes.duration)
    start = time.time() + 0.05
    for k in range(total):
        yield k, total, start + k / sizes.rate - time.time()


def latency_stats(lat: list[float], sent: int) -> dict[str, Any]:
    lat = sorted(lat)
    if not lat:
        return {"sent": sent, "received": 0}

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] * 1000

    return {"sent": sent, "received": len(lat), "p50_ms": pct(50), "p90_ms": pct(90),
            "p99_ms": pct(99), "max_ms": lat[-1] * 1000, "min_ms": lat[0] * 1000}


# -- the jobs' own records ------------------------------------------------------------------


class Counter:
    """One counter on the store server over a plain blocking socket: each
    call is exactly one round trip (nothing pipelined, nothing deferred)."""

    def __init__(self, url: str, key: str) -> None:
        u = urlsplit(url)
        self.key = key.encode()
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def _call(self, *args: bytes) -> bytes:
        self.sock.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        line = self.reader.readline()
        if line[:1] == b"-" or not line:
            raise RuntimeError(f"store: {line.decode(errors='replace').strip() or 'connection closed'}")
        if line[:1] == b"$":
            n = int(line[1:])
            return b"" if n < 0 else self.reader.read(n + 2)[:-2]
        return line[1:].strip()

    def incr(self) -> None:
        self._call(b"INCR", self.key)

    def count(self) -> int:
        value = self._call(b"GET", self.key)
        return int(value) if value else 0

    def delete(self) -> None:
        self._call(b"DEL", self.key)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def done_key() -> str:
    return os.environ.get(ENV_DONE_KEY, "peerbench:done")


_local = threading.local()  # (pid, Counter): one connection per thread, reopened after a fork


def record_done() -> None:
    """What every no-op job does, in every queue: one blocking round trip,
    INCR $PEERBENCH_DONE_KEY on the store server ($PEERBENCH_REDIS). The
    producers count finished jobs by reading it."""
    mine = getattr(_local, "counter", None)
    if mine is None or mine[0] != os.getpid():
        mine = _local.counter = (os.getpid(), Counter(os.environ[ENV_REDIS], done_key()))
    mine[1].incr()


def rate(n: int, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"n": n, "seconds": seconds, "per_s": n / seconds if seconds > 0 else None, **extra}


class RedisPeer:
    """A blocking peer on redis db 0 (Celery, Dramatiq): reset empties the server."""

    kind = "sync"

    def __init__(self, url: str) -> None:
        from redis import Redis

        self.url = url
        self.redis = Redis.from_url(url + "/0")

    def reset(self) -> None:
        self.redis.flushall()

    def close(self) -> None:
        self.redis.close()
