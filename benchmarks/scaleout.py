"""Scale-out: end-to-end tasks/s on 1, 2, 3 store nodes, and the model's inputs (needs root).

Needs root (it builds a network-namespace test bed, tests/scaleout/netbed.py)
and Debian's ``redis-server``::

    sudo .venv/bin/python benchmarks/scaleout.py [--nodes 1,2,3] [--workers 2]
        [--tasks 20000] [--queues 24] [--batch 1000] [--concurrency 50] [--rounds 3]
        [--pogocache-bin PATH [--pogocache-threads 1] | --cluster] [--out-dir benchmarks/results] [--tag DATE]

The bed has one host per store node (``s1``..``s3``: a redis-server, or
Pogocache with ``--pogocache-bin``; with ``--cluster`` the redis-servers
form one Redis Cluster, N primaries with equal slot ranges and no replicas,
and every process uses one ``redis+cluster://`` URL), ``--workers`` worker hosts (``w1``..:
one ``nexq worker --store LIST --concurrency 50 --app benchmarks.nexq_app:app``
each), a producer host (``p``) and a tap host (``t``: the forwarders through
which this script, in the root namespace, reads the stores' INFO).

One measurement, for N nodes: fresh stores and workers; the producer
(``scaleout.py produce``, on host p) connects with ``Nexq(LIST).connect()``,
runs a warm-up (2 tasks per queue, until every worker is registered and the
warm-up tasks succeeded, then 1.5 s for the workers to see every queue), then at a signal from this script bulk-enqueues ``--tasks``
no-op tasks spread round-robin over ``--queues`` queues (``q00``, ``q01``,
...: consistent hashing spreads them over the nodes; node names are bed
addresses, so the fixed default ``--subnet`` fixes the placement) with ``enqueue_many``
in batches of ``--batch``, and polls ``Inspector.queue_stats`` (every 50 ms)
until the queues' succeeded counters sum to all of them: tasks/s is tasks /
(first enqueue -> all succeeded). Around that window this script reads:

* per node, ``INFO commandstats`` (calls, except its own ``INFO``s) and
  ``INFO cpu`` (``used_cpu_user + used_cpu_sys``) -> commands per task and
  store CPU per command (Pogocache has no INFO: its CPU comes from
  /proc/PID/stat and commands per task are not measured);
* ``/proc/PID/stat`` (utime + stime) of every worker process -> worker CPU per task;
* the producer's own ``time.process_time()`` over the window -> producer CPU per task;
* ``/proc/stat`` -> how many cores the whole machine was busy (ours and others').

Rounds are interleaved (every N once per round, round after round) so a burst
of load from other processes hits one round, not one N; the tables show
medians. Progress on stderr; results in ``OUT_DIR/scaleout-TAG.json`` (every
run) and ``.md`` (tables), the markdown printed too. Process logs stay in a
temporary directory (printed). A default run takes under a minute on 2 cores
(9 runs of 2-3 s, plus starting and stopping processes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

APP = "benchmarks.nexq_app:app"
REDIS_PORT, POGOCACHE_PORT = 6379, 9401
POLL = 0.05  # producer: seconds between queue_stats polls
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the producer (runs inside host p) ----------------------------------------------


def _write_state(path: str, state: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


async def _produce(args: argparse.Namespace) -> None:
    import trio

    from nexq import Nexq

    queues = [f"q{i:02d}" for i in range(args.queues)]
    app = Nexq(args.store)
    async with app.connect():
        rt = app._runtime
        assert rt is not None

        async def succeeded() -> int:
            return sum(int(s["succeeded"]) for s in await rt.inspector.queue_stats(queues))

        # Warm-up: every queue known, every worker registered and claiming.
        await app.enqueue_many([("noop", i, {"queue": q}) for i in range(2) for q in queues])
        with trio.fail_after(args.ready_timeout):
            while len(await rt.registry.list()) < args.expect_workers or await succeeded() < 2 * len(queues):
                await trio.sleep(0.1)
            await trio.sleep(1.5)  # workers re-read the queue list every second
        base = await succeeded()
        placement = {}  # queue -> node name (host:port); empty for a single store
        if len(rt.broker.nodes) > 1:
            placement = {q: rt.broker.names[rt.broker.node_of(q)] for q in queues}
        if args.store.startswith("redis+cluster://"):
            # queue -> partition -> the primary serving the partition's slot
            parts = [n.store for n in rt.broker.nodes]
            placement = {q: parts[rt.broker.node_of(q)].cluster.map.node_for(parts[rt.broker.node_of(q)].slot)
                         for q in queues}
        _write_state(args.state, {"phase": "ready", "placement": placement})
        while not os.path.exists(args.go):
            await trio.sleep(0.001)

        cpu0, t0 = time.process_time(), time.perf_counter()
        for lo in range(0, args.tasks, args.batch):
            await app.enqueue_many([("noop", i, {"queue": queues[i % len(queues)]})
                                    for i in range(lo, min(lo + args.batch, args.tasks))])
        t_enq = time.perf_counter() - t0
        last_write, done = 0.0, 0
        with trio.fail_after(args.run_timeout):
            while (done := await succeeded() - base) < args.tasks:
                now = time.perf_counter()
                if now - last_write > 0.25:
                    _write_state(args.state, {"phase": "run", "done": done, "elapsed": now - t0})
                    last_write = now
                await trio.sleep(POLL)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        _write_state(args.state, {"phase": "done", "done": done, "seconds": seconds,
                                  "enqueue_seconds": t_enq, "cpu_seconds": cpu, "placement": placement})


def produce_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="scaleout.py produce")
    p.add_argument("--store", required=True)
    p.add_argument("--tasks", type=int, required=True)
    p.add_argument("--queues", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--expect-workers", type=int, required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--go", required=True)
    p.add_argument("--ready-timeout", type=float, default=90)
    p.add_argument("--run-timeout", type=float, default=300)
    args = p.parse_args(argv)
    import trio

    try:
        trio.run(_produce, args)
    except BaseException as exc:
        _write_state(args.state, {"phase": "error", "error": f"{type(exc).__name__}: {exc}"})
        raise


# -- measuring ---------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> dict[str, float]:
    """The whole machine's CPU seconds since boot (/proc/stat): ``busy`` (user,
    nice, system, irq, softirq: every process's and the kernel's), ``idle``
    (with iowait) and ``steal`` (taken by the hypervisor for other guests)."""
    with open("/proc/stat") as f:
        v = [int(x) / CLK_TCK for x in f.readline().split()[1:9]]
    return {"busy": v[0] + v[1] + v[2] + v[5] + v[6], "idle": v[3] + v[4], "steal": v[7]}


def store_snapshot(client: Any, kind: str, pid: int) -> dict[str, Any]:
    snap: dict[str, Any] = {"proc_cpu": proc_cpu(pid)}
    if kind == "redis":
        stats = client.info("commandstats")
        calls = {k: v["calls"] for k, v in stats.items() if k != "cmdstat_info"}
        snap["calls"] = sum(calls.values())
        snap["usec"] = sum(v["usec"] for k, v in stats.items() if k != "cmdstat_info")
        snap["by_command"] = calls
        cpu = client.info("cpu")
        snap["cpu"] = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return snap


def machine_facts(redis_bin: str, pogocache_bin: str | None) -> dict[str, Any]:
    cpu = platform.processor() or "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    out = subprocess.run([redis_bin, "--version"], check=False, capture_output=True, text=True).stdout.split()
    redis_v = next((w[2:] for w in out if w.startswith("v=")), "unknown")
    facts = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
             "kernel": platform.release(), "redis_server": redis_v}
    if pogocache_bin:
        facts["pogocache"] = pogocache_bin
    return facts


class Progress:
    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, line: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < (0.25 if self.tty else 2.0):
            return
        self.last = now
        sys.stderr.write(("\r\x1b[2K" + line) if self.tty else line + "\n")
        sys.stderr.flush()

    def end(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


# -- one measurement ---------------------------------------------------------------


def measure(bed: Any, args: argparse.Namespace, n: int, label: str, run_dir: str,
            clients: dict[str, Any], progress: Progress) -> dict[str, Any]:
    from tests.scaleout.cluster import nexq_argv, nexq_env, redis_argv, wait_for

    kind = "pogocache" if args.pogocache_bin else "redis"
    port = POGOCACHE_PORT if kind == "pogocache" else REDIS_PORT
    stores = [bed[f"s{i + 1}"] for i in range(n)]
    workers = [bed[f"w{j + 1}"] for j in range(args.workers)]
    os.makedirs(run_dir)
    procs: list[tuple[Any, Any]] = []  # (host, process) to stop afterwards, in order
    try:
        progress(f"[{label}] starting {n} store node(s)", force=True)
        store_procs = []
        for h in stores:
            if kind == "redis":
                argv = redis_argv(args.redis_bin, h, port, run_dir)
                if args.cluster:
                    argv += ["--cluster-enabled", "yes",
                             "--cluster-config-file", os.path.join(run_dir, f"nodes-{h.name}.conf")]
            else:
                argv = [args.pogocache_bin, "-h", h.addr, "-p", str(port), "--maxmemory", "unlimited",
                        "--threads", str(args.pogocache_threads)]
            proc = h.popen(argv, log=os.path.join(run_dir, f"{h.name}.log"))
            store_procs.append(proc)
            procs.append((h, proc))
        for h in stores:
            wait_for(clients[h.name].ping, 15, f"store on {h.name}")
        store_list = ",".join(f"{kind}://{h.addr}:{port}" for h in stores)
        if args.cluster:
            form_cluster([clients[h.name] for h in stores], [h.addr for h in stores], port)
            store_list = "redis+cluster://" + ",".join(f"{h.addr}:{port}" for h in stores)

        progress(f"[{label}] starting {args.workers} worker(s) and the producer", force=True)
        env = nexq_env()
        worker_procs = []
        for h in workers:
            proc = h.popen(nexq_argv("worker", "--store", store_list, "--app", APP,
                                     "--concurrency", str(args.concurrency), "--shutdown-grace", "1",
                                     "--log-level", "warning"),
                           env=env, log=os.path.join(run_dir, f"{h.name}.log"), cwd=ROOT)
            worker_procs.append(proc)
            procs.append((h, proc))
        state, go = os.path.join(run_dir, "state.json"), os.path.join(run_dir, "go")
        prod = bed["p"].popen(
            [sys.executable, os.path.abspath(__file__), "produce", "--store", store_list,
             "--tasks", str(args.tasks), "--queues", str(args.queues), "--batch", str(args.batch),
             "--expect-workers", str(args.workers), "--state", state, "--go", go],
            env=env, log=os.path.join(run_dir, "p.log"), cwd=ROOT)
        procs.append((bed["p"], prod))

        def read_state() -> dict[str, Any] | None:
            try:
                with open(state) as f:
                    st: dict[str, Any] = json.load(f)
            except (OSError, ValueError):
                st = {}
            if st.get("phase") == "error" or (prod.poll() is not None and st.get("phase") != "done"):
                raise RuntimeError(f"producer failed: {st.get('error') or prod.returncode} (log: {run_dir}/p.log)")
            for h, w in zip(workers, worker_procs):
                if w.poll() is not None:
                    raise RuntimeError(f"worker on {h.name} exited {w.returncode} (log: {run_dir}/{h.name}.log)")
            return st or None

        deadline = time.monotonic() + 120
        while (st := read_state()) is None or st["phase"] != "ready":
            if time.monotonic() > deadline:
                raise TimeoutError(f"[{label}] producer not ready within 120 s (logs: {run_dir})")
            progress(f"[{label}] warm-up")
            time.sleep(0.05)
        placement = st["placement"]

        before: dict[str, Any] = {
            "stores": [store_snapshot(clients[h.name], kind, p.pid) for h, p in zip(stores, store_procs)],
            "workers": [proc_cpu(w.pid) for w in worker_procs],
            "machine": machine_cpu(),
            "wall": time.monotonic(),
        }
        with open(go, "w"):
            pass
        deadline = time.monotonic() + args.run_timeout
        while (st := read_state() or {}).get("phase") != "done":
            if time.monotonic() > deadline:
                raise TimeoutError(f"[{label}] not done within {args.run_timeout} s (logs: {run_dir})")
            if st.get("phase") == "run" and st.get("elapsed"):
                progress(f"[{label}] {st['done']:,}/{args.tasks:,} done, "
                         f"{st['done'] / st['elapsed']:,.0f} tasks/s so far")
            time.sleep(0.02)
        after: dict[str, Any] = {
            "stores": [store_snapshot(clients[h.name], kind, p.pid) for h, p in zip(stores, store_procs)],
            "workers": [proc_cpu(w.pid) for w in worker_procs],
            "machine": machine_cpu(),
            "wall": time.monotonic(),
        }
        prod.wait(30)
    finally:
        for h, p in reversed(procs):
            h.stop(p, signal.SIGTERM, timeout=10)

    tasks = args.tasks
    wall = after["wall"] - before["wall"]
    per_node = []
    for h, b, a in zip(stores, before["stores"], after["stores"]):
        node: dict[str, Any] = {"host": h.name, "addr": h.addr,
                                "queues": sorted(q for q, where in placement.items() if where == f"{h.addr}:{port}")
                                if placement else [f"q{i:02d}" for i in range(args.queues)],
                                "proc_cpu_s": a["proc_cpu"] - b["proc_cpu"]}
        if kind == "redis":
            node["commands"] = a["calls"] - b["calls"]
            node["cpu_s"] = a["cpu"] - b["cpu"]
            node["exec_usec"] = a["usec"] - b["usec"]
            node["by_command"] = {k.removeprefix("cmdstat_"): v - b["by_command"].get(k, 0)
                                  for k, v in a["by_command"].items() if v - b["by_command"].get(k, 0)}
        else:
            node["cpu_s"] = node["proc_cpu_s"]
        per_node.append(node)
    store_cpu = sum(x["cpu_s"] for x in per_node)
    commands = sum(x["commands"] for x in per_node) if kind == "redis" else None
    worker_cpu = sum(a - b for a, b in zip(after["workers"], before["workers"]))
    cores = {k: (after["machine"][k] - before["machine"][k]) / wall for k in before["machine"]}
    ours = (store_cpu + worker_cpu + st["cpu_seconds"]) / wall
    run = {
        "nodes": n, "label": label, "store_list": store_list,
        "tasks": tasks, "seconds": st["seconds"], "enqueue_seconds": st["enqueue_seconds"],
        "tasks_per_s": tasks / st["seconds"],
        "commands_per_task": commands / tasks if commands is not None else None,
        "store_cpu_us_per_command": 1e6 * store_cpu / commands if commands else None,
        "store_exec_us_per_command": sum(x["exec_usec"] for x in per_node) / commands if commands else None,
        "store_cpu_us_per_task": 1e6 * store_cpu / tasks,
        "worker_cpu_us_per_task": 1e6 * worker_cpu / tasks,
        "producer_cpu_us_per_task": 1e6 * st["cpu_seconds"] / tasks,
        "busiest_node_share": max(len(x["queues"]) for x in per_node) / args.queues,
        "machine_busy_cores": cores["busy"],
        "bench_cores": ours,
        "other_cores": max(0.0, cores["busy"] - ours),
        "idle_cores": cores["idle"],
        "steal_cores": cores["steal"],
        "per_node": per_node,
    }
    return run


def form_cluster(clients: list[Any], addrs: list[str], port: int) -> None:
    """Make the fresh cluster-mode servers one cluster: equal slot ranges,
    every node met, until each says ``cluster_state:ok``."""
    n = len(clients)
    for i, c in enumerate(clients):
        c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * 16384 // n, (i + 1) * 16384 // n - 1)
        c.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
    for addr in addrs[1:]:
        clients[0].execute_command("CLUSTER", "MEET", addr, port)
    deadline = time.monotonic() + 30
    while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")
                  and f"cluster_known_nodes:{n}".encode() in c.execute_command("CLUSTER", "INFO") for c in clients):
        if time.monotonic() > deadline:
            raise TimeoutError("the cluster did not form within 30 s")
        time.sleep(0.05)


def predict(run: dict[str, Any], cores: float) -> float:
    """Shared box: T = C / (w + c*s + p), all per task."""
    per_task = run["worker_cpu_us_per_task"] + run["store_cpu_us_per_task"] + run["producer_cpu_us_per_task"]
    return float(cores / (per_task / 1e6))


# -- the run -----------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(runs: list[dict[str, Any]], nodes: list[int], cores: int) -> list[dict[str, Any]]:
    out = []
    keys = ["tasks_per_s", "commands_per_task", "store_cpu_us_per_command", "store_exec_us_per_command",
            "store_cpu_us_per_task", "worker_cpu_us_per_task", "producer_cpu_us_per_task",
            "machine_busy_cores", "bench_cores", "other_cores", "idle_cores", "steal_cores"]
    for n in nodes:
        mine = [r for r in runs if r["nodes"] == n and "error" not in r]
        if not mine:
            out.append({"nodes": n, "error": "no successful run"})
            continue
        s: dict[str, Any] = {"nodes": n, "rounds": len(mine)}
        for k in keys:
            vals = [r[k] for r in mine if r.get(k) is not None]
            s[k] = median(vals) if vals else None
        s["tasks_per_s_min"] = min(r["tasks_per_s"] for r in mine)
        s["tasks_per_s_max"] = max(r["tasks_per_s"] for r in mine)
        s["predicted_all_cores"] = median([predict(r, cores) for r in mine])
        s["queues_per_node"] = [len(x["queues"]) for x in mine[0]["per_node"]]
        out.append(s)
    return out


def fmt(v: float | None, digits: int = 0) -> str:
    if v is None or math.isnan(v):
        return "—"
    return f"{v:,.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    m, a = result["machine"], result["settings"]
    lines = [
        "# Nexq scale-out: 1, 2, 3 store nodes on a network-namespace bed"
        + (" (Redis Cluster)" if "Cluster" in a["store"] else ""),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, Linux {m['kernel']}; "
        f"redis-server {m['redis_server']}" + (f"; Pogocache {m['pogocache']}" if "pogocache" in m else "") + ".",
        (f"Run {result['started']}, {result['duration_s']:.0f} s: `{result['command']}`. "
         f"1-minute load average before / after: {result['load_before']:.2f} / {result['load_after']:.2f}."),
        "",
        (f"Each store node is a {a['store']} on its own bed host (its own network namespace; all share "
         f"the machine's {m['cores']} cores); {a['workers']} worker hosts each run one `nexq worker "
         f"--concurrency {a['concurrency']} --app {APP}`; a producer host bulk-enqueues {a['tasks']:,} "
         f"no-op tasks over {a['queues']} queues (`enqueue_many`, batches of {a['batch']}) and polls "
         "the queues' succeeded counters; tasks/s = tasks / (first enqueue → all succeeded). "
         f"Median of {a['rounds']} rounds (min–max in brackets); every run is in the JSON."),
        "",
        ("| store nodes | queues per node | tasks/s end to end | commands / task (c) | store CPU µs / command (s) "
         "| store CPU µs / task (c·s) | worker CPU µs / task (w) | producer CPU µs / task (p) "
         f"| model, {m['cores']} idle cores: {m['cores']} / (w + c·s + p) "
         "| cores used: bench / other processes / idle / steal |"),
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result["summary"]:
        if "error" in s:
            lines.append(f"| {s['nodes']} | {s['error']} |" + " |" * 8)
            continue
        lines.append(
            f"| {s['nodes']} | {' / '.join(map(str, s['queues_per_node']))} "
            f"| {fmt(s['tasks_per_s'])} ({fmt(s['tasks_per_s_min'])}–{fmt(s['tasks_per_s_max'])}) "
            f"| {fmt(s['commands_per_task'], 2)} | {fmt(s['store_cpu_us_per_command'], 2)} "
            f"| {fmt(s['store_cpu_us_per_task'])} | {fmt(s['worker_cpu_us_per_task'])} "
            f"| {fmt(s['producer_cpu_us_per_task'])} "
            f"| {fmt(s['predicted_all_cores'])} "
            f"| {fmt(s['bench_cores'], 2)} / {fmt(s['other_cores'], 2)} / {fmt(s['idle_cores'], 2)} "
            f"/ {fmt(s['steal_cores'], 2)} |")
    lines += [
        "",
        ("Commands / task: `INFO commandstats` calls summed over the nodes (this script's own `INFO`s "
         "excluded), per task. Store CPU: `INFO cpu` used_cpu_user + used_cpu_sys (Pogocache: "
         "/proc/PID/stat). Worker CPU: /proc/PID/stat utime + stime of the worker processes. "
         "Producer CPU: its process time over the window (enqueueing and polling). Cores used: "
         "/proc/stat over the window (CPU seconds / wall seconds): the bench's processes (stores, "
         "workers, producer), every other process on the machine (with kernel time charged to "
         "them), idle, and hypervisor steal. Model: T = C / (w + c·s + p) with all C cores free "
         "for the bench (docs/scaling.md)."),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "produce":
        produce_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="1,2,3", help="store node counts to measure (default 1,2,3)")
    ap.add_argument("--workers", type=int, default=2, help="worker hosts, one `nexq worker` each (default 2)")
    ap.add_argument("--tasks", type=int, default=20_000, help="no-op tasks per run (default 20000)")
    ap.add_argument("--queues", type=int, default=24, help="queues the tasks spread over (default 24)")
    ap.add_argument("--batch", type=int, default=1000, help="enqueue_many batch size (default 1000)")
    ap.add_argument("--concurrency", type=int, default=50, help="per worker (default 50)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each measures every N once (default 3)")
    ap.add_argument("--redis-bin", default=None, help="redis-server binary (default: found on PATH)")
    ap.add_argument("--pogocache-bin", default=None, help="use this Pogocache binary for the nodes")
    ap.add_argument("--cluster", action="store_true",
                    help="the redis-servers form one Redis Cluster (N primaries, no replicas): a redis+cluster:// URL")
    ap.add_argument("--pogocache-threads", type=int, default=1, help="Pogocache --threads (default 1)")
    ap.add_argument("--run-timeout", type=float, default=180, help="seconds one run may take (default 180)")
    ap.add_argument("--subnet", default="10.213.10.0/24",
                    help="bed subnet (default 10.213.10.0/24; node names are addresses, so it fixes placement)")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("--tag", default=date.today().isoformat(), help="file name suffix (default: today)")
    args = ap.parse_args()
    if args.cluster and args.pogocache_bin:
        sys.exit("scaleout.py: --cluster is Redis Cluster; Pogocache has no cluster mode")
    nodes = [int(x) for x in args.nodes.split(",")]
    if os.geteuid() != 0:
        sys.exit("scaleout.py needs root: the bed creates network namespaces (sudo, or run as root)")
    import redis

    from tests.scaleout.netbed import NetBed
    from tests.servers import find_redis_server

    args.redis_bin = args.redis_bin or find_redis_server()
    kind = "pogocache" if args.pogocache_bin else "redis"
    port = POGOCACHE_PORT if kind == "pogocache" else REDIS_PORT
    machine = machine_facts(args.redis_bin, args.pogocache_bin)
    logs = tempfile.mkdtemp(prefix="nexq-scaleout-")
    print(f"process logs in {logs}", file=sys.stderr)
    started, t_start, load_before = datetime.now().isoformat(timespec="seconds"), time.monotonic(), os.getloadavg()[0]
    hosts = [f"s{i + 1}" for i in range(max(nodes))] + [f"w{j + 1}" for j in range(args.workers)] + ["p", "t"]
    runs: list[dict[str, Any]] = []
    progress = Progress()
    with NetBed(hosts, subnet=args.subnet) as bed:
        clients = {}
        for i in range(max(nodes)):
            h = bed[f"s{i + 1}"]
            clients[h.name] = redis.Redis(unix_socket_path=bed["t"].forward(h.addr, port), protocol=2,
                                          socket_timeout=10)
        for r in range(args.rounds):
            for n in nodes:
                label = f"round {r + 1}/{args.rounds}, N={n}"
                try:
                    run = measure(bed, args, n, label, os.path.join(logs, f"round{r + 1}-N{n}"), clients, progress)
                except Exception as exc:  # noqa: BLE001 - reported, the other runs go on
                    run = {"nodes": n, "label": label, "error": f"{type(exc).__name__}: {exc}"}
                    progress(f"[{label}] FAILED: {run['error']}", force=True)
                    progress.end()
                else:
                    progress(f"[{label}] {run['tasks_per_s']:,.0f} tasks/s "
                             f"({run['seconds']:.2f} s, {run['commands_per_task'] or 0:.1f} commands/task)",
                             force=True)
                    progress.end()
                run["round"] = r + 1
                runs.append(run)
        for c in clients.values():
            c.close()
    result = {
        "started": started,
        "duration_s": time.monotonic() - t_start,
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable, ROOT)
                                                     if sys.executable.startswith(ROOT) else sys.executable,
                                                     os.path.relpath(os.path.abspath(__file__), ROOT),
                                                     *sys.argv[1:]]),
        "load_before": load_before, "load_after": os.getloadavg()[0],
        "machine": machine,
        "settings": {"nodes": nodes, "workers": args.workers, "tasks": args.tasks, "queues": args.queues,
                     "batch": args.batch, "concurrency": args.concurrency, "rounds": args.rounds,
                     "store": "Pogocache" if args.pogocache_bin else
                     "redis-server in a Redis Cluster (one primary per node, no replicas)" if args.cluster
                     else "redis-server",
                     "pogocache_threads": args.pogocache_threads if args.pogocache_bin else None,
                     "app": APP, "poll_s": POLL},
        "runs": runs,
        "summary": summarize(runs, nodes, os.cpu_count() or 1),
    }
    from benchmarks.common import write_results

    write_results(args.out_dir, f"scaleout-{args.tag}", result, markdown(result))


if __name__ == "__main__":
    main()
