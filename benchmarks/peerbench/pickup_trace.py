"""What happens between a producer's enqueue call and its job's start, seen
from the store: the commands of each connection, in order, with the
server's timestamps (redis MONITOR).

    .venv-peers/bin/python -m benchmarks.peerbench.pickup_trace [nexq|huey|rq|...] [--samples 5]

Starts a redis-server on a free port and the queue's worker processes (as
peers.py does), waits until they are idle, then, ``--samples`` times: the
producer enqueues one no-op job and waits for it; the job's own ``INCR``
(base.record_done) marks its start. Prints each sample's commands from the
enqueue's first to that INCR (the producer's counter reads left out):
offset in µs from the enqueue call, connection, command; a run of
commands from one connection with no other connection's in between is one
round trip. Then the medians: total, round trips in series.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

from benchmarks.common import local_redis

from .base import ENV_DONE_KEY, ENV_LATDIR, ENV_REDIS, Counter, Workers, done_key

IDLE = 0.3  # seconds idle before each sample: the latency scenario's gap is 0.01 s; the producer
#            re-reads the worker registry (doorbell addresses, types) only once a second


class Monitor:
    """A MONITOR connection read in a thread: (server time, client, command) lines."""

    def __init__(self, url: str) -> None:
        host, port = url.split("//")[1].split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.reader = self.sock.makefile("rb")
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        assert self.reader.readline().startswith(b"+OK")
        self.lines: list[tuple[float, str, str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.reader:
            # +1733440000.123456 [0 127.0.0.1:5555] "SET" "k" "v"
            line = raw.decode(errors="replace").strip()
            stamp, _, rest = line[1:].partition(" [")
            client, _, command = rest.partition("] ")
            try:
                self.lines.append((float(stamp), client.split(" ")[-1], command))
            except ValueError:
                continue

    def close(self) -> None:
        self.sock.close()


def local_port(counter: Counter) -> str:
    return f"127.0.0.1:{counter.sock.getsockname()[1]}"


def sample(peer: Any, mon: Monitor, counter: Counter, target: int, i: int) -> list[tuple[float, str, str]]:
    mon.lines.clear()
    t0 = time.time()
    peer.enqueue(i)
    end = time.monotonic() + 10
    while counter.count() < target:
        if time.monotonic() > end:
            raise RuntimeError("the job did not run within 10 s")
        time.sleep(0.001)
    time.sleep(0.05)  # MONITOR lines arrive after the commands ran
    mine, key = local_port(counter), done_key()
    out, started = [], False
    for stamp, client, command in list(mon.lines):
        if client == mine:
            continue
        started = started or stamp >= t0 - 0.001
        if started:
            out.append(((stamp - t0) * 1e6, client, command))
            if command.startswith('"INCR"') and key in command:
                break
    return out


def round_trips(lines: list[tuple[float, str, str]]) -> int:
    """Runs of consecutive commands from one connection."""
    return sum(1 for k, line in enumerate(lines) if k == 0 or line[1] != lines[k - 1][1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peer", nargs="?", default="nexq")
    ap.add_argument("--samples", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pickup-trace-")
    with local_redis() as url:
        os.environ.update({ENV_REDIS: url, ENV_LATDIR: tmp, ENV_DONE_KEY: "pickup:done"})
        if args.peer == "nexq":
            from .nexq_peer import ClientPeer, Namespaces

            peer: Any = ClientPeer(url, Namespaces())
        else:
            peer = importlib.import_module(f"benchmarks.peerbench.{args.peer}_peer").Peer(url)
        workers = Workers(tmp)
        counter = Counter(url, done_key())
        try:
            peer.reset()
            peer.start_workers(workers)
            peer.enqueue(0)
            end = time.monotonic() + 60
            while counter.count() < 1:
                workers.check_alive()
                if time.monotonic() > end:
                    raise RuntimeError("workers did not start")
                time.sleep(0.01)
            mon = Monitor(url)
            totals, trips = [], []
            for i in range(1, args.samples + 1):
                time.sleep(IDLE)
                lines = sample(peer, mon, counter, i + 1, i)
                print(f"\n-- sample {i}: {len(lines)} commands, {round_trips(lines)} round trips in series")
                for off, client, command in lines:
                    print(f"{off:9.0f} µs  {client:>15}  {command[:110]}")
                if lines:
                    totals.append(lines[-1][0])
                    trips.append(round_trips(lines))
            mon.close()
            print(f"\n{args.peer}: enqueue call → job's INCR, median {statistics.median(totals):.0f} µs "
                  f"(samples {', '.join(f'{t:.0f}' for t in totals)}); round trips in series, median "
                  f"{statistics.median(trips)}")
        finally:
            workers.stop()
            counter.close()
            peer.close()
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
