"""``nexq run`` (all-in-one) and ``nexq worker`` (joins a shared store).

Both take the store and namespace from flag > NEXQ_* env > the app's own
(``Nexq(store, namespace=)``) > default and log a start-up banner saying what
they chose and why. Only ``nexq run`` without ``--app`` registers the demo
handlers (the quick start); ``nexq worker`` needs ``--app``.
"""

from __future__ import annotations

import argparse
import errno
import gc
import ipaddress
import logging
import os
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .. import __version__
from ..app import Nexq
from ..config import Settings
from ..errors import NexqError
from ..logs import setup_logging
from . import options
from .discovery import api_url, remove_server_file, write_server_file
from .errors import CliError, UsageError, unwrap

if TYPE_CHECKING:
    from ..runtime.supervisor import Supervisor

log = logging.getLogger("nexq")
GC_THRESHOLD = 7000  # allocations between young-generation collections (Python's default: 700)


def add_parsers(sub: Any) -> None:
    run = sub.add_parser("run", help="all-in-one: REST API + dashboard, scheduler and workers")
    _runner(run)
    options.data_dir(run)
    run.add_argument("--host", help="bind address (default 127.0.0.1); env NEXQ_HOST")
    run.add_argument("--port", type=int, help="HTTP port (default 8080, 0 = any free port); env NEXQ_PORT")
    run.add_argument("--api-token", help="require this bearer token on /api and /metrics; env NEXQ_API_TOKEN")
    run.add_argument("--no-worker", action="store_true", help="API and scheduler only")
    run.add_argument("--store-memory-limit", help="refuse new tasks (503) above this store memory, e.g. 2G")
    run.add_argument("--worker-processes", help="run the workers in this many processes of their own "
                     "(auto = one per core; default 1: in this process); needs a shared --store and "
                     "--app; env NEXQ_WORKER_PROCESSES")
    run.add_argument("--api-processes", help="serve the API from this many processes on the same port "
                     "(SO_REUSEPORT: the kernel spreads connections; auto = one per core; default 1); "
                     "needs a shared --store; env NEXQ_API_PROCESSES")
    run.add_argument("--api-child", action="store_true", help=argparse.SUPPRESS)  # one of --api-processes

    worker = sub.add_parser("worker", help="worker (and scheduler) only, joining a shared store; needs --app")
    _runner(worker)
    worker.add_argument("--with-scheduler", action="store_true", help=argparse.SUPPRESS)  # the default now
    worker.add_argument("--processes", help="worker processes under one supervisor, each with "
                        "--concurrency slots; a crashed one is started again (auto = one per core; "
                        "default 1); env NEXQ_PROCESSES")
    worker.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)  # a child of --processes


def _runner(p: argparse.ArgumentParser) -> None:
    options.common(p)
    p.add_argument("--app", help="module:attribute of your Nexq app (its handlers, cron entries, store "
                   "and namespace); env NEXQ_APP. nexq run without it serves the demo handlers")
    p.add_argument("--concurrency", type=int, help="handler slots (default 10)")
    p.add_argument("--queues", help="comma-separated queues to serve, * for all, name:weight for "
                   "weighted draws (default *)")
    p.add_argument("--lease", type=float, help="lease seconds of a running attempt (default 30)")
    p.add_argument("--shutdown-grace", type=float, help="seconds running tasks get at shutdown (default 30)")
    p.add_argument("--store-replicas", type=int, help="Redis replicas that must acknowledge each enqueue "
                   "and outcome (WAIT) before it counts (default 0); env NEXQ_STORE_REPLICAS")
    p.add_argument("--save-interval", type=float,
                   help="seconds between Pogocache SAVEs by the scheduler (default 5, 0 = off)")
    p.add_argument("--no-scheduler", action="store_true",
                   help="do not run the scheduler agents here (due tasks, expired leases, cron); "
                   "some process on the store must")


def cmd_run(args: argparse.Namespace, worker_only: bool = False) -> int:
    """Run the service until a signal; returns the exit code."""
    first = options.settings_from(args)  # flags and env: which app, how to log
    _ = first.store_nodes  # a bad --store list fails here, before anything else
    setup_logging(first.log_level, first.log_format)
    if first.app is None:
        if worker_only:
            raise UsageError("nexq worker needs --app module:attribute naming your Nexq app "
                             "(e.g. --app myproject.tasks:app): the demo handlers are only for nexq run")
        from .demo import demo_app

        app, app_spec = demo_app(), None
    else:
        app, app_spec = options.load_app(first.app), first.app
    settings = options.settings_from(args, app if app_spec else None)
    _ = settings.store_nodes  # ... or a bad store of the app's
    if worker_only and settings.embedded:
        raise UsageError(
            "nexq worker needs a shared store: the embedded store lives inside one `nexq run` "
            "process. Pass --store pogocache://HOST:9401 (or set NEXQ_STORE, or give the app one)."
        )
    # An API child serves the API only: the process that started it runs the rest.
    api_child = getattr(args, "api_child", False)
    worker = not getattr(args, "no_worker", False) and not api_child
    processes = _processes(settings, app_spec, worker_only, worker)
    api_processes = 1 if worker_only or api_child else _api_processes(settings)
    try:
        if worker_only and processes > 1:
            return int(trio.run(_supervise_workers, settings, app, app_spec, not args.no_scheduler))
        return int(trio.run(partial(_serve, settings, app, app_spec, api=not worker_only, worker=worker,
                                    scheduler=not args.no_scheduler and not api_child, processes=processes,
                                    api_processes=api_processes, api_child=api_child,
                                    supervised=getattr(args, "supervised", False) or api_child)))
    except BaseException as exc:
        err = unwrap(exc)
        if isinstance(err, OSError) and not isinstance(err, NexqError) and err.errno in (
                errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise CliError(f"--port {settings.port}: cannot listen on {settings.host}:{settings.port}: "
                           f"{err.strerror}; pass another --port (or --host)") from exc
        raise


def _processes(settings: Settings, app_spec: str | None, worker_only: bool, worker: bool) -> int:
    """How many worker processes to start (1: none, the worker runs here);
    UsageError when they cannot work."""
    name = "processes" if worker_only else "worker_processes"
    n: int = getattr(settings, name)
    if n == 1:
        return 1
    given = f"{settings.origins.get(name, '--' + name.replace('_', '-'))} {n}"
    if settings.embedded:  # (nexq worker refused it already)
        raise UsageError(f"{given}: the embedded store lives inside this nexq run process and worker "
                         "processes cannot share it; pass --store redis://HOST:6379 (or pogocache://HOST:9401, "
                         "or set NEXQ_STORE), or --worker-processes 1")
    if not worker:
        raise UsageError(f"{given} and --no-worker contradict each other: pass one of them")
    if app_spec is None:
        raise UsageError(f"{given} needs --app module:attribute: worker processes load your handlers "
                         "from it (the demo handlers run only inside nexq run)")
    return n


def _api_processes(settings: Settings) -> int:
    """How many processes serve the API (1: this one alone); UsageError
    when several cannot work."""
    n = settings.api_processes
    if n > 1 and settings.embedded:
        given = f"{settings.origins.get('api_processes', '--api-processes')} {n}"
        raise UsageError(f"{given}: the embedded store lives inside this nexq run process and API "
                         "processes cannot share it; pass --store redis://HOST:6379 (or pogocache://HOST:9401, "
                         "or set NEXQ_STORE), or --api-processes 1")
    return n


async def _serve(settings: Settings, app: Nexq, app_spec: str | None, *, api: bool, worker: bool,
                 scheduler: bool, processes: int = 1, api_processes: int = 1, supervised: bool = False,
                 api_child: bool = False) -> int:
    """run_service, with the banner once it started (a failure to start is
    then the only line on stderr) and the server file for the CLI; with
    ``processes`` > 1 the workers run in supervised child processes
    instead, with ``api_processes`` > 1 that many - 1 children serve the
    API on the same port beside this process (the exit code is the
    supervisor's)."""
    from ..runtime.service import run_service
    from ..runtime.supervisor import supervise

    marker, code = None, 0
    children = processes > 1
    api_children = api_processes - 1 if api else 0
    service_scope, watch_scope = trio.CancelScope(), trio.CancelScope()

    async def service_task(task_status: Any) -> None:
        with service_scope:
            await run_service(settings, app, api=api, worker=worker and not children, scheduler=scheduler,
                              handle_signals=not (children or api_children), task_status=task_status)
        watch_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            service = await nursery.start(service_task)
            if api:
                settle_heap()
            if api_child:
                log.info("nexq %s: API process %d started", __version__, os.getpid())
            elif supervised:
                log.info("nexq %s: worker process %d started (concurrency %d, scheduler %s)", __version__,
                         os.getpid(), settings.concurrency, "on" if scheduler else "off")
            else:
                banner(settings, app, app_spec, "run" if api else "worker", worker, scheduler, processes)
            if supervised:
                nursery.start_soon(_watch_supervisor, service.stop, watch_scope)
            if api and not api_child:
                url = api_url(settings.host, service.port)
                more = f" (in {api_processes} processes, {_origin(settings, 'api_processes')})" if api_children else ""
                log.info("dashboard and API on %s/%s", url, more)
                if settings.store is None:  # the embedded store: let the CLI find us
                    marker = write_server_file(os.path.abspath(settings.data_dir), url)
            if children or api_children:
                def on_signal(count: int) -> None:
                    if count > 1:
                        service_scope.cancel()
                    elif not children:  # API children alone: this process stops with them
                        service.stop.set()
                    # (the first signal drains worker children while the API stays up here)

                code = await supervise(_children(settings, processes if children else 0, scheduler=False,
                                                 api=api_children, port=service.port), on_signal)
                service.stop.set()
    finally:
        if marker is not None:
            remove_server_file(marker)
    return code


async def _supervise_workers(settings: Settings, app: Nexq, app_spec: str | None, scheduler: bool) -> int:
    """``nexq worker --processes N``: check the store, then supervise N
    workers (the first runs the scheduler agents); returns the exit code."""
    from ..runtime.supervisor import supervise
    from ..store import open_stores

    async with open_stores(settings.store_nodes, **settings.store_options()) as stores:
        for store in stores:
            await store.ping()  # fail fast, in one line, rather than N children each failing
    banner(settings, app, app_spec, "worker", True, scheduler, settings.processes)
    return await supervise(_children(settings, settings.processes, scheduler))


def _children(settings: Settings, workers: int, scheduler: bool, api: int = 0, port: int | None = None) -> Supervisor:
    """The supervisor of ``workers`` ``nexq worker`` children, then ``api``
    API children serving ``port`` beside this process, all with these
    settings (handed over as NEXQ_* variables); the first worker runs the
    scheduler agents if ``scheduler``."""
    from ..runtime.supervisor import Supervisor

    def command(slot: int) -> list[str]:
        if slot >= workers:
            return [sys.executable, "-m", "nexq.cli.main", "run", "--api-child", "--port", str(port)]
        argv = [sys.executable, "-m", "nexq.cli.main", "worker", "--supervised"]
        return argv if scheduler and slot == 0 else [*argv, "--no-scheduler"]

    def label(slot: int) -> str:  # this process is API process 1
        return f"worker process {slot + 1}" if slot < workers else f"API process {slot - workers + 2}"

    kind = "worker processes" if not api else "API processes" if not workers else "child processes"
    return Supervisor(command, settings.environ(processes=1, worker_processes=1), workers + api,
                      grace=settings.shutdown_grace, label=label, kind=kind)


def settle_heap() -> None:
    """Tune the garbage collector for serving, once start-up is done.

    The objects of start-up (modules, the app, the runtime) live as long as
    the process: frozen, a full collection no longer walks them (it took
    tens of milliseconds, stalling every request in flight). A request
    frees nearly all it allocates by reference counting, so a larger first
    generation runs collections far less often for the same garbage.
    """
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


async def _watch_supervisor(stop: trio.Event, scope: trio.CancelScope) -> None:
    """Set ``stop`` when stdin (a pipe from the supervisor) closes: the
    supervisor is gone, even killed, and nobody else would stop us."""
    with scope:
        async with trio.lowlevel.FdStream(os.dup(0)) as stdin:
            while await stdin.receive_some():
                pass
        if not stop.is_set():
            log.warning("the supervisor is gone (its pipe closed): stopping")
            stop.set()


def banner(settings: Settings, app: Nexq, app_spec: str | None, role: str, worker: bool, scheduler: bool,
           processes: int = 1) -> None:
    """Log what this process runs with, and where each choice came from."""
    log.info("nexq %s: %s started", __version__, role)
    store = ("embedded store in " + os.path.abspath(settings.data_dir)) if settings.store is None \
        else mask(settings.store)
    log.info("store: %s (%s)", store, _origin(settings, "store"))
    log.info("namespace: %s (%s)", settings.namespace, _origin(settings, "namespace"))
    # A flag is seen by this process only: code calling app.connect() elsewhere
    # still uses the app's value (NEXQ_* variables it would see too).
    for name, app_value in (("store", app.store_url), ("namespace", app.namespace)):
        chosen, origin = getattr(settings, name), settings.origins.get(name, "")
        if app_spec and app_value is not None and origin.startswith("--") and chosen != app_value:
            shown = mask(app_value) if name == "store" else app_value
            log.warning("%s overrides the app's %s %s: code using app.connect() without it still "
                        "uses the app's", origin, name, shown)
    work = (f"queues {','.join(settings.queues)}, concurrency {settings.concurrency}" if worker
            else "off (--no-worker)")
    if worker and processes > 1:
        name = "processes" if role == "worker" else "worker_processes"
        work += f" in each of {processes} worker processes ({_origin(settings, name)})"
    where = " (in worker process 1)" if role == "worker" and processes > 1 else ""
    log.info("worker: %s; scheduler: %s", work, f"on{where}" if scheduler else "off (--no-scheduler)")
    types = ", ".join(sorted(app.handlers)) or "none"
    if app_spec is None:
        log.info("handlers: %s: the demo handlers of the quick start (no --app given; "
                 "pass --app module:attribute to run your own)", types)
    else:
        log.info("handlers: %s (from %s)", types, app_spec)
    if role == "run" and settings.api_token is None:
        if _is_loopback(settings.host):
            log.info("no API token set: listening on loopback only (set --api-token to expose it)")
        else:
            log.warning("no API token set and listening on %s: anyone who reaches it can use the API",
                        settings.host)


def _origin(settings: Settings, name: str) -> str:
    origin = settings.origins.get(name, "default")
    return "default" if origin == "default" else f"from {origin}"


def mask(url: str) -> str:
    """The store URL(s) with passwords masked, for logs."""
    from ..store.url import split_store_urls

    try:
        return ",".join(str(n) for n in split_store_urls(url))
    except NexqError:
        return "<invalid store URL>"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
