"""CPU seconds of every process a scenario involves, read from /proc.

A scenario's CPU is split three ways:

- **producer**: the runner process itself (the enqueuing client; for Nexq's
  in-process scenarios also the Worker and, on memory://, the store);
- **workers**: every process in the worker sessions (base.Workers starts each
  worker command as a session leader, so prefork children, ``--processes``
  children and pool processes are in it whatever their process group);
- **store**: the server process listening on the store URL's port.

Each process counts utime + stime; a session's processes also count cutime
+ cstime, so a child that exits and is reaped between two snapshots still
counts (its time moves to its parent, which is in the same session).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (index 0 = field 3), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def process_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of process ``pid`` (all its threads; with ``children`` also
    its reaped children's); 0.0 if it is gone."""
    f = _stat(pid)
    if f is None:
        return 0.0
    ticks = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if children else 0)
    return ticks / CLK_TCK


def sessions_cpu(sids: Sequence[int]) -> float:
    """CPU seconds of every live process in sessions ``sids``, reaped children included."""
    if not sids:
        return 0.0
    wanted, total = set(sids), 0
    for path in glob.glob("/proc/[0-9]*/stat"):
        f = _stat(path.split("/")[2])
        if f is not None and int(f[3]) in wanted:
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / CLK_TCK


def listening_pid(url: str) -> int | None:
    """The process listening on the loopback TCP port of ``url`` (the store
    server), found through /proc/net/tcp socket inodes; None when not found
    (another user's process, a unix socket, memory://)."""
    try:
        port = urlsplit(url).port
    except ValueError:
        return None
    if not port:
        return None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                        inodes.add(f"socket:[{cols[9]}]")
        except OSError:
            continue
    if not inodes:
        return None
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in inodes:
                return int(fd.split("/")[2])
        except OSError:
            continue
    return None


class CpuMeter:
    """Snapshots of (producer, workers, store) CPU seconds; ``since`` turns
    two of them into a scenario's figures per task."""

    def __init__(self, store_url: str, worker_sessions: Callable[[], Sequence[int]] = list) -> None:
        self.store_pid = listening_pid(store_url)
        self.worker_sessions = worker_sessions

    def snapshot(self) -> dict[str, float]:
        snap = {"producer": process_cpu(os.getpid()), "workers": sessions_cpu(self.worker_sessions())}
        if self.store_pid is not None:
            snap["store"] = process_cpu(self.store_pid)
        return snap

    def since(self, before: dict[str, float], tasks: int) -> dict[str, Any]:
        """CPU seconds spent by each part since ``before`` and in all, and the
        total per 1,000 tasks; ``store`` is missing when its process was not found."""
        now = self.snapshot()
        out: dict[str, Any] = {k: max(0.0, now[k] - before[k]) for k in now if k in before}
        out["total"] = sum(out.values())
        out["per_1000_s"] = out["total"] / tasks * 1000 if tasks else None
        out["store_found"] = self.store_pid is not None
        return out
