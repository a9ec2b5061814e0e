"""The ``nexq`` command line: run, worker, enqueue, tasks, doctor, bench, cluster."""

from .main import main

__all__ = ["main"]
