"""One queue's benchmark in its own process (started by benchmarks/peers.py).

    python -m benchmarks.peerbench.run PEER --store URL --out FILE.json
        [--sizes JSON] [--scenarios a,b,...] [--drain]

Progress on stderr; the result (settings + one dict per scenario) in FILE.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

import attrs

from .base import ENV_LATDIR, ENV_REDIS, Progress, Sizes

PEERS = ("nexq", "arq", "saq", "rq", "celery", "dramatiq", "huey")
SCENARIOS = ("enqueue_seq", "enqueue_conc", "enqueue_bulk", "e2e", "latency",
             # Nexq only: Client from 100 threads, and the trio engine figures
             "enqueue_conc_threads", "enqueue_seq_trio", "enqueue_conc_trio", "enqueue_bulk_trio",
             "e2e_inproc", "latency_inproc")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("peer", choices=PEERS)
    ap.add_argument("--store", required=True, help="redis://127.0.0.1:PORT, pogocache://…, memory://")
    ap.add_argument("--label", help="label of the progress line")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", default="{}", help="JSON overrides of base.Sizes")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--drain", action="store_true", help="Nexq: run leftovers (shared server)")
    args = ap.parse_args()

    # SIGTERM from peers.py (its deadline): unwind, so `finally` stops the workers.
    signal.signal(signal.SIGTERM, _terminate)
    sizes = Sizes(**json.loads(args.sizes))
    scenarios = set(args.scenarios.split(","))
    tmp = tempfile.mkdtemp(prefix=f"peerbench-{args.peer}-")
    latdir = os.path.join(tmp, "lat")
    os.mkdir(latdir)
    # Read by the peer modules at import and by every worker process they start.
    os.environ[ENV_REDIS] = args.store
    os.environ[ENV_LATDIR] = latdir
    os.environ["NEXQ_RETENTION"] = "600"
    progress = Progress(args.label or args.peer)
    out = {"peer": args.peer, "store": args.store, "sizes": attrs.asdict(sizes), "settings": {},
           "results": {}, "ok": False}
    t0 = time.monotonic()
    try:
        if args.peer == "nexq":
            from .nexq_peer import run_nexq

            run_nexq(args.store, sizes, progress, tmp, latdir, scenarios, args.drain, out)
        else:
            mod = importlib.import_module(f"benchmarks.peerbench.{args.peer}_peer")
            peer = mod.Peer(args.store)
            out["settings"] = peer.settings
            if peer.kind == "async":
                import asyncio

                from .drivers import run_async

                async def go():
                    await peer.open()
                    try:
                        return await run_async(peer, sizes, progress, tmp, latdir, scenarios, out["results"])
                    finally:
                        await peer.close()

                asyncio.run(go())
            else:
                from .drivers import run_sync

                try:
                    run_sync(peer, sizes, progress, tmp, latdir, scenarios, out["results"])
                finally:
                    peer.close()
        out["ok"] = not any("error" in r for r in out["results"].values())
    except BaseException as exc:  # SIGTERM arrives as KeyboardInterrupt, maybe in a group
        out["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    out["seconds"] = time.monotonic() - t0
    if not out["ok"]:
        out["logs"] = tmp  # worker logs kept for a look
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    progress.done(f"finished in {out['seconds']:.0f} s")
    if out["ok"]:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
