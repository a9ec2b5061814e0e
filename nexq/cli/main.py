"""The ``nexq`` command: run, worker, enqueue, tasks.

Every failure a user can cause (a bad flag, an unreachable store, a bad
``--app``) ends in one line on stderr naming the problem and a non-zero
exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from .. import __version__
from ..app import Nexq
from ..config import ConfigError, Settings
from ..errors import InvalidStoreURL, NexqError, StoreUnavailable
from ..logs import setup_logging

log = logging.getLogger("nexq")


class UsageError(Exception):
    """A problem with how nexq was called; printed as one line, exit 2."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", help="store URL (pogocache://, redis://, rediss://, unix://, memory://), "
                   "or several comma-separated store nodes; env NEXQ_STORE")
    p.add_argument("--namespace", help="key prefix for this deployment (default nexq)")
    p.add_argument("--log-level", help="debug, info, warning, error")
    p.add_argument("--log-format", help="text or json")
    p.add_argument("--store-timeout", type=float, help="seconds before a store command counts as failed (default 5)")


def _runner(p: argparse.ArgumentParser, workers: bool = True) -> None:
    p.add_argument("--app", help="module:attribute of your Nexq app (its handlers and cron entries)")
    p.add_argument("--concurrency", type=int, help="handler slots (default 10)")
    p.add_argument("--queues", help="comma-separated queues to serve, * for all (default *)")
    p.add_argument("--lease", type=float, help="lease seconds of a running attempt (default 30)")
    p.add_argument("--shutdown-grace", type=float, help="seconds running tasks get at shutdown (default 30)")
    p.add_argument("--save-interval", type=float, help="seconds between Pogocache SAVEs by the scheduler (default 5, 0 = off)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexq", description="Nexq: a distributed task queue on trio.")
    parser.add_argument("--version", action="version", version=f"nexq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="all-in-one: REST API + dashboard, scheduler and workers")
    _common(run)
    _runner(run)
    run.add_argument("--data-dir", help="embedded store directory (default ./.nexq-data)")
    run.add_argument("--host", help="bind address (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="HTTP port (default 8080)")
    run.add_argument("--api-token", help="require this bearer token on /api and /metrics; env NEXQ_API_TOKEN")
    run.add_argument("--no-worker", action="store_true", help="API and scheduler only")
    run.add_argument("--store-memory-limit", help="refuse new tasks (503) above this store memory, e.g. 2G")

    worker = sub.add_parser("worker", help="worker only, joining a shared store")
    _common(worker)
    _runner(worker)
    worker.add_argument("--with-scheduler", action="store_true", help="also run the scheduler agents")

    enq = sub.add_parser("enqueue", help="enqueue one task")
    _common(enq)
    enq.add_argument("type")
    enq.add_argument("--payload", default="null", help="JSON payload")
    enq.add_argument("--priority", help="0-9 or low/normal/high")
    enq.add_argument("--delay", type=float, help="seconds to wait before running")
    enq.add_argument("--queue", help="queue name (default 'default')")
    enq.add_argument("--max-retries", type=int)
    enq.add_argument("--data-dir", help="embedded store directory (default ./.nexq-data)")

    doctor = sub.add_parser("doctor", help="check a store: reachable, commands, memory, persistence, clocks")
    _common(doctor)
    doctor.add_argument("--data-dir", help="embedded store directory (default ./.nexq-data)")
    doctor.add_argument("--store-memory-limit", help="the limit you plan to run with, e.g. 2G")

    bench = sub.add_parser("bench", help="measure enqueue, processing and pick-up latency on a store")
    _common(bench)
    bench.add_argument("--tasks", type=int, default=10_000, help="tasks per enqueue scenario (default 10000)")

    from .cluster import add_parser as add_cluster

    add_cluster(sub, _common)

    tasks = sub.add_parser("tasks", help="list, show, cancel or retry tasks")
    _common(tasks)
    tasks.add_argument("action", choices=["list", "show", "cancel", "retry"])
    tasks.add_argument("id", nargs="?")
    tasks.add_argument("--status")
    tasks.add_argument("--type")
    tasks.add_argument("--queue")
    tasks.add_argument("--limit", type=int, default=20)
    tasks.add_argument("--data-dir", help="embedded store directory (default ./.nexq-data)")
    return parser


def load_app(spec: str | None) -> Nexq:
    """The user's app from ``module:attr``, or the demo handlers."""
    if not spec:
        from .demo import demo_app

        return demo_app()
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--app {spec!r}: expected module:attribute, e.g. myproject.tasks:app")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--app {spec!r}: cannot import {module_name!r}: {exc}") from None
    app = getattr(module, attr, None)
    if not isinstance(app, Nexq):
        raise UsageError(f"--app {spec!r}: {attr!r} is not a nexq.Nexq app in {module_name}")
    return app


def settings_from(args: argparse.Namespace) -> Settings:
    names = attrs.fields_dict(Settings)
    return Settings.load({k: v for k, v in vars(args).items() if k in names})


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_run(args: argparse.Namespace, worker_only: bool = False) -> int:
    settings = settings_from(args)
    _ = settings.store_nodes  # a bad --store list fails here, before anything starts
    setup_logging(settings.log_level, settings.log_format)
    if worker_only and settings.embedded:
        raise UsageError(
            "nexq worker needs a shared store: the embedded store lives inside one `nexq run` "
            "process. Pass --store pogocache://HOST:9401 (or set NEXQ_STORE)."
        )
    app = load_app(settings.app)
    from ..runtime.service import run_service

    if not worker_only:
        where = f"http://{settings.host}:{settings.port}/"
        store = ("embedded store in " + os.path.abspath(settings.data_dir)) if settings.embedded else _mask(settings.store)
        log.info("nexq %s: dashboard and API on %s, store: %s", __version__, where, store)
        if settings.api_token is None:
            if _is_loopback(settings.host):
                log.info("no API token set: listening on loopback only (set --api-token to expose it)")
            else:
                log.warning("no API token set and listening on %s: anyone who reaches it can use the API",
                            settings.host)
    trio.run(lambda: run_service(
        settings, app,
        api=not worker_only,
        worker=not getattr(args, "no_worker", False),
        scheduler=not worker_only or getattr(args, "with_scheduler", False),
    ))
    return 0


def _mask(url: str | None) -> str:
    from ..store.url import split_store_urls

    try:
        return ",".join(str(n) for n in split_store_urls(url or "memory://"))
    except NexqError:
        return "<invalid store URL>"


async def _with_client(settings: Settings, fn: Any) -> Any:
    app = Nexq(settings.store_url, namespace=settings.namespace)
    async with app.connect(settings.store_url):
        return await fn(app)


def cmd_enqueue(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--payload is not valid JSON: {exc}") from None
    opts: dict[str, Any] = {}
    for name in ("priority", "delay", "queue", "max_retries"):
        if getattr(args, name) is not None:
            opts[name] = getattr(args, name)
    if "priority" in opts and opts["priority"].isdigit():
        opts["priority"] = int(opts["priority"])

    async def go(app: Nexq) -> None:
        try:
            h = await app.enqueue(args.type, payload, **opts)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(json.dumps((await h.info()).to_json(), indent=2))

    trio.run(_with_client, settings, go)
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.action != "list" and not args.id:
        raise UsageError(f"nexq tasks {args.action} needs a task id")

    async def go(app: Nexq) -> int:
        ins = app._runtime.inspector  # type: ignore[union-attr]
        if args.action == "list":
            page = await ins.list(status=args.status, type=args.type, queue=args.queue, limit=args.limit)
            for t in page.tasks:
                print(f"{t.id}  {t.status.value:<10} {t.type:<20} {t.spec.queue:<10} p{t.spec.priority}")
            return 0
        if args.action == "show":
            t = await ins.get(args.id)
            if t is None:
                raise UsageError(f"no task {args.id}")
            print(json.dumps(t.to_json(), indent=2))
            return 0
        ok = await (app.broker.cancel(args.id) if args.action == "cancel" else ins.requeue(args.id))
        print(f"{args.action}: {'done' if ok else 'not possible (unknown task or wrong state)'}")
        return 0 if ok else 1

    return int(trio.run(_with_client, settings, go))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "worker":
            return cmd_run(args, worker_only=True)
        if args.command == "enqueue":
            return cmd_enqueue(args)
        if args.command == "cluster":
            from .cluster import run_cluster

            settings = settings_from(args)
            _ = settings.store_nodes
            try:
                return int(trio.run(run_cluster, args, settings))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        if args.command == "bench":
            from .bench import run_bench

            if args.tasks < 1000:
                raise UsageError("--tasks must be at least 1000")
            settings = settings_from(args)
            if len(settings.store_nodes) > 1:
                raise UsageError("--store: nexq bench measures one store node; pass one URL")
            url = settings.store or "memory://"  # never the data directory of a real deployment
            trio.run(run_bench, url, args.tasks, settings.store_options())
            return 0
        if args.command == "doctor":
            from .doctor import run_doctor

            settings = settings_from(args)
            codes = []
            for node in settings.store_nodes:  # each node on its own
                if len(settings.store_nodes) > 1:
                    print(f"== store node {node.node_name}")
                codes.append(int(trio.run(run_doctor, node, settings.namespace,
                                          settings.store_memory_limit, settings.store_options())))
            return max(codes)
        return cmd_tasks(args)
    except (UsageError, ConfigError, InvalidStoreURL) as exc:
        print(f"nexq: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"nexq: the store is unreachable: {exc}", file=sys.stderr)
        return 3
    except NexqError as exc:
        print(f"nexq: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
