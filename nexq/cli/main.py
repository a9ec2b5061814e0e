"""The ``nexq`` command: run, worker, enqueue, tasks, top, doctor, bench, cluster.

Every failure a user can cause (a bad flag, an unreachable store, an unknown
task, a bad ``--app``) ends in one line on stderr naming the problem and a
documented exit code (:data:`.errors.EXIT_CODES`), never a traceback unless
``--log-level debug``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

import trio

from .. import __version__
from . import options, serve, tasks, top
from .errors import EXIT_CODES, UsageError, describe, unwrap


def build_parser() -> argparse.ArgumentParser:
    parser = options.Parser(prog="nexq", description="Nexq: a distributed task queue on trio.",
                            epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nexq {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=options.Parser)
    serve.add_parsers(sub)
    tasks.add_parsers(sub)
    top.add_parser(sub)

    doctor = sub.add_parser("doctor", help="check a store: reachable, commands, memory, persistence, clocks")
    options.common(doctor)
    options.data_dir(doctor)
    doctor.add_argument("--store-memory-limit", help="the limit you plan to run with, e.g. 2G")

    bench = sub.add_parser("bench", help="measure enqueue, processing and pick-up latency on a store")
    options.common(bench)
    bench.add_argument("--tasks", type=int, default=10_000, help="tasks per enqueue scenario (default 10000)")

    from .cluster import add_parser as add_cluster

    add_cluster(sub, options.common)
    return parser


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    settings = options.settings_from(args)
    if settings.store is None and not os.path.isdir(settings.data_dir):
        raise UsageError(f"--data-dir {settings.data_dir}: no such directory (nexq doctor checks an "
                         "existing store; `nexq run` creates it)")
    codes = []
    for node in settings.store_nodes:  # each node on its own
        if len(settings.store_nodes) > 1:
            print(f"== store node {node.node_name}")
        codes.append(int(trio.run(run_doctor, node, settings.namespace,
                                  settings.store_memory_limit, settings.store_options())))
    return max(codes)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    if args.tasks < 1000:
        raise UsageError("--tasks must be at least 1000")
    settings = options.settings_from(args)
    if len(settings.store_nodes) > 1:
        raise UsageError("--store: nexq bench measures one store node; pass one URL")
    url = settings.store or "memory://"  # never the data directory of a real deployment
    trio.run(run_bench, url, args.tasks, settings.store_options())
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    from .cluster import run_cluster

    settings = options.settings_from(args)
    _ = settings.store_nodes
    try:
        return int(trio.run(run_cluster, args, settings))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


COMMANDS = {
    "run": serve.cmd_run,
    "worker": lambda args: serve.cmd_run(args, worker_only=True),
    "enqueue": tasks.cmd_enqueue,
    "tasks": tasks.cmd_tasks,
    "top": top.cmd_top,
    "doctor": cmd_doctor,
    "bench": cmd_bench,
    "cluster": cmd_cluster,
}


def _debug(args: argparse.Namespace | None) -> bool:
    try:
        return args is not None and options.settings_from(args).log_level == "DEBUG"
    except Exception:  # noqa: BLE001 - a bad setting was reported already; no traceback then
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names; returns its exit code."""
    args = None
    try:
        args = build_parser().parse_args(argv)
        return int(COMMANDS[args.command](args))
    except SystemExit:  # --help, --version
        raise
    except BaseException as exc:  # noqa: BLE001 - the edge: whatever it was, one line and a code
        code, message = describe(unwrap(exc))
        if _debug(args):
            traceback.print_exception(exc)
        print(f"nexq: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
