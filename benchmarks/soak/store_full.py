"""Fill a real Pogocache through the REST API: nothing accepted may be lost.

    python benchmarks/soak/store_full.py --pogocache-bin /path/to/pogocache

The Pogocache form of ``tests/reliability/test_store_full.py`` (which CI runs
on a redis-server that evicts like Pogocache): Pogocache with
``--maxmemory 50mb`` (it evicts silently past it), ``nexq run
--store-memory-limit 40M`` with the test app, then 60 batches of 200 tasks
with 10 KB payloads, 6 at a time (120 MB offered), through
``POST /api/tasks/batch``. Every accepted task must succeed (none 404, none
stuck); refused batches get 503 ``store_full``; once the backlog drained and
its retention (5 s) passed, new tasks are accepted again. Prints one result
line. This script does not build Pogocache: bring a binary.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from store_crash import wait_port

from tests.reliability.test_store_full import APP, post_batch, statuses
from tests.runtime.procs import spawn, stop, wait_http
from tests.servers import free_port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pogocache-bin", required=True)
    ap.add_argument("--maxmemory", default="50mb")
    ap.add_argument("--limit", default="40M", help="nexq run --store-memory-limit")
    ap.add_argument("--batches", type=int, default=60)
    args = ap.parse_args()
    store_port, api_port = free_port(), free_port()
    store = subprocess.Popen([args.pogocache_bin, "-h", "127.0.0.1", "-p", str(store_port),
                              "--maxmemory", args.maxmemory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(store_port)
    with tempfile.TemporaryDirectory() as d:
        proc = spawn("run", "--port", str(api_port), "--store", f"pogocache://127.0.0.1:{store_port}",
                     "--namespace", "full", "--app", APP, "--store-memory-limit", args.limit,
                     "--concurrency", "4", "--log-level", "warning", env={"NEXQ_RETENTION": "5"},
                     log=os.path.join(d, "run.log"))
        try:
            wait_http(api_port)
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                results = list(pool.map(lambda b: post_batch(api_port, 200, b), range(args.batches)))
            accepted = [tid for _, ids in results for tid in ids]
            refused = sum(1 for code, _ in results if code == 503)
            deadline = time.monotonic() + 300
            left, final = list(accepted), {}
            while left and time.monotonic() < deadline:
                now = statuses(api_port, left)
                final.update(now)
                left = [t for t, s in now.items() if s not in ("succeeded", "dead") and not s.startswith("missing")]
                time.sleep(0.5)
            missing = sum(1 for s in final.values() if s.startswith("missing"))
            dead = sum(1 for s in final.values() if s == "dead")
            drained = time.monotonic() - started
            reopened = None
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if post_batch(api_port, 1, -1)[0] == 201:
                    reopened = time.monotonic() - started
                    break
                time.sleep(0.5)
            print(f"pogocache --maxmemory {args.maxmemory}, --store-memory-limit {args.limit}: "
                  f"{args.batches} batches of 200 x 10 KB: accepted {len(accepted)} "
                  f"({len(accepted) // 200} batches), refused {refused} batches; of the accepted: "
                  f"{sum(1 for s in final.values() if s == 'succeeded')} succeeded, {missing} lost (404), "
                  f"{dead} dead, {len(left)} not ended; drained in {drained:.0f} s; accepting again after "
                  f"{'never' if reopened is None else f'{reopened:.0f} s'}")
        finally:
            stop(proc)
            store.terminate()
            store.wait(10)


if __name__ == "__main__":
    main()
