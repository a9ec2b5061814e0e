"""Restart the store again and again while tasks flow: none may stay stuck.

    python benchmarks/soak/store_restarts.py --pogocache-bin /path/to/pogocache
    python benchmarks/soak/store_restarts.py --redis   # redis-server, RDB on SAVE

The store runs with persistence in a temp dir (Pogocache: ``--persist``;
redis-server: an RDB written on ``SAVE``); two ``nexq worker`` processes
(scheduler agents on, ``SAVE`` every second, reconciliation every 2 s)
run the tasks; a producer enqueues at --rate tasks/s; the store is stopped
--restarts times, alternately with SIGTERM and SIGKILL, and started again
from its file. Pogocache's snapshot is not point-in-time, so any recent
writes may vanish: afterwards every acknowledged task whose spec survived
must reach a terminal state within the reconciliation interval plus the
lease (an orphan, whose index entry and lane slot were both lost, once it is
looked up by id, as ``handle.result()`` does: the settling loop here reads
every task by id), and the tasks that did not survive are counted (lost
after the last snapshot). This script does not build Pogocache: bring a binary.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import trio  # noqa: E402
from store_crash import free_port, launch_store  # noqa: E402

from nexq import Nexq  # noqa: E402

LEASE, RECONCILE = 5.0, 2.0


def start_store(args: argparse.Namespace, port: int, d: str) -> subprocess.Popen[bytes]:
    return launch_store(None if args.redis else args.pogocache_bin, port, d,
                        "--appendonly", "no", "--dbfilename", "nexq.rdb")


async def produce(app: Nexq, rate: float, stop: trio.Event, acked: list[tuple[str, float]]) -> None:
    start, i = time.monotonic(), 0
    while not stop.is_set():
        await trio.sleep(max(0.0, start + i / rate - time.monotonic()))
        try:
            h = await app.enqueue("sleep", {"seconds": 0.02}, delay=0.5 if i % 5 == 0 else None)
            acked.append((h.id, time.monotonic()))
        except Exception:
            pass  # not acknowledged (the store is down): not counted
        i += 1


async def count_orphans(app: Nexq, ids: list[str]) -> int:
    """Tasks whose spec survived but whose index entry did not: nothing but
    their id leads to them (a lookup by id adopts them, docs/design.md)."""
    from nexq.codec import decode_spec

    k, store = app.broker.home.keys, app.broker.home.store
    orphans = 0
    for lo in range(0, len(ids), 500):
        chunk = ids[lo : lo + 500]
        specs = [decode_spec(raw) for raw in await store.mget([k.spec(i) for i in chunk]) if raw]
        named = await store.mget([k.index(s.seq) for s in specs]) if specs else []
        orphans += sum(1 for s, v in zip(specs, named) if v != s.id.encode())
    return orphans


async def settle(app: Nexq, ids: list[str], limit: float) -> tuple[int, int, int]:
    """(terminal, stuck, missing) once every surviving task ended or ``limit`` passed."""
    ins = app._runtime.inspector  # type: ignore[union-attr]
    deadline = time.monotonic() + limit
    while True:
        terminal = missing = 0
        stuck = []
        for lo in range(0, len(ids), 500):
            for t in await ins.get_many(ids[lo : lo + 500]):
                if t is None:
                    missing += 1
                elif t.status.terminal:
                    terminal += 1
                else:
                    stuck.append(t)
        if not stuck or time.monotonic() > deadline:
            for t in stuck[:5]:  # what the store still says about a stuck task
                k = app.broker.home.keys
                facts = await app.broker.home.store.mget([k.cur(t.id), k.index(t.spec.seq)])
                print(f"stuck: {t.id} {t.status.value} attempt {t.attempt} cur={facts[0]!r} "
                      f"indexed={facts[1] is not None}", file=sys.stderr)
                if os.environ.get("SOAK_DEBUG"):
                    st = app.broker.home.store
                    q, p = t.spec.queue, t.spec.priority
                    hd, tl, sq, low = await st.mget([k.lane_head(q, p), k.lane_tail(q, p), k.seq, k.reconcile_low])
                    hi = int(tl or 0) + 2000
                    slots = await st.mget([k.lane_slot(q, p, n) for n in range(1, hi)])
                    where = [n for n, v in enumerate(slots, 1) if v and t.id.encode() in v]
                    print(f"   head={hd!r} tail={tl!r} seq={sq!r} rclow={low!r} pos={t.spec.seq} slots={where}",
                          file=sys.stderr)
            return terminal, len(stuck), missing
        await trio.sleep(1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pogocache-bin")
    ap.add_argument("--redis", action="store_true")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--every", type=float, default=3.0, help="seconds between restarts")
    ap.add_argument("--logs", help="keep the workers' logs in this folder")
    args = ap.parse_args()
    if not args.redis and not args.pogocache_bin:
        ap.error("give --pogocache-bin PATH or --redis")
    port = free_port()
    url = f"{'redis' if args.redis else 'pogocache'}://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": ROOT, "NEXQ_RECONCILE_INTERVAL": str(RECONCILE),
           "NEXQ_RECONCILE_GRACE": "3", "NEXQ_LEASE": str(LEASE)}
    with tempfile.TemporaryDirectory() as d:
        store = start_store(args, port, d)
        workers = [subprocess.Popen(
            [sys.executable, "-m", "nexq.cli.main", "worker", "--store", url, "--namespace", "soak",
             "--save-interval", "1", "--concurrency", "20", "--app", "tests.runtime.sample_app:app"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(args.logs or d, f"worker{i}.log"), "wb")) for i in range(2)]
        acked: list[tuple[str, float]] = []
        kills: list[tuple[str, float]] = []

        orphans = 0

        async def run() -> tuple[int, int, int]:
            nonlocal store, orphans
            app = Nexq(url, namespace="soak")
            async with app.connect():
                stop = trio.Event()
                async with trio.open_nursery() as n:
                    n.start_soon(produce, app, args.rate, stop, acked)
                    for k in range(args.restarts):
                        await trio.sleep(args.every)
                        how = signal.SIGTERM if k % 2 == 0 else signal.SIGKILL
                        if args.redis and how == signal.SIGTERM:
                            subprocess.run(["redis-cli", "-p", str(port), "SAVE"], capture_output=True)
                        store.send_signal(how)
                        await trio.to_thread.run_sync(store.wait)
                        kills.append((how.name, time.monotonic()))
                        store = start_store(args, port, d)
                    await trio.sleep(args.every)
                    stop.set()
                orphans = await count_orphans(app, [i for i, _ in acked])
                return await settle(app, [i for i, _ in acked], RECONCILE * 3 + LEASE + 30)

        try:
            terminal, stuck, missing = trio.run(run)
            if stuck and os.environ.get("SOAK_HOLD"):  # keep everything up to look at by hand
                print(f"holding: store port {port}, workers {[w.pid for w in workers]}; "
                      f"touch {os.environ['SOAK_HOLD']} to end", file=sys.stderr, flush=True)
                deadline = time.monotonic() + 600
                while not os.path.exists(os.environ["SOAK_HOLD"]) and time.monotonic() < deadline:
                    time.sleep(1)
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(30)
            store.terminate()
            store.wait(10)
    print(f"store={'redis' if args.redis else 'pogocache'} rate={args.rate}/s restarts={len(kills)} "
          f"({', '.join(k for k, _ in kills)}) acknowledged={len(acked)} terminal={terminal} "
          f"stuck={stuck} lost_after_snapshot={missing} orphans_adopted_by_lookup={orphans}")


if __name__ == "__main__":
    main()
