"""The ``nexq`` command line: run, worker, enqueue, tasks, doctor, bench, cluster."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The ``nexq`` script's entry point (see :func:`nexq.cli.main.main`).

    Imported lazily so that ``python -m nexq.cli.main`` does not find the
    module already imported by its package (runpy warns about that)."""
    from .main import main as run

    return run(argv)


__all__ = ["main"]
