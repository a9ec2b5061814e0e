"""Options shared by the ``nexq`` sub-commands, and argument types that
refuse bad values with a message naming the flag (argparse adds the name)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import attrs

from ..app import Nexq
from ..config import Settings
from ..task import parse_priority
from .errors import UsageError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are UsageErrors (one line, exit 2)
    instead of a usage dump and ``sys.exit``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def common(p: argparse.ArgumentParser) -> None:
    """Where the store is and how to log: every sub-command has these."""
    p.add_argument("--store", help="store URL (pogocache://, redis://, rediss://, unix://, memory://, "
                   "redis+sentinel://s1:26379,s2:26379/NAME), "
                   "or several comma-separated store nodes; env NEXQ_STORE; default: the app's, "
                   "else the embedded store in --data-dir")
    p.add_argument("--namespace", help="key prefix for this deployment; env NEXQ_NAMESPACE; "
                   "default: the app's, else nexq")
    p.add_argument("--log-level", help="debug, info, warning, error (debug also prints tracebacks); "
                   "env NEXQ_LOG_LEVEL")
    p.add_argument("--log-format", help="text or json; env NEXQ_LOG_FORMAT")
    p.add_argument("--store-timeout", type=float,
                   help="seconds before a store command counts as failed (default 5)")


def data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="embedded store directory (default ./.nexq-data); env NEXQ_DATA_DIR")


def client(p: argparse.ArgumentParser) -> None:
    """Options of the commands that read or write tasks (enqueue, tasks)."""
    data_dir(p)
    p.add_argument("--app", help="module:attribute of your Nexq app: its store, namespace and "
                   "handler defaults; env NEXQ_APP")
    p.add_argument("--api", help="URL of a running nexq run (e.g. http://127.0.0.1:8080) to go "
                   "through its REST API instead of the store; env NEXQ_API. Found by itself "
                   "when a nexq run holds --data-dir")
    p.add_argument("--api-token", help="bearer token for --api; env NEXQ_API_TOKEN")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")


def checked(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a converter raising ValueError with a reason."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _number(kind: Callable[[str], Any], ok: Callable[[Any], bool], reason: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"not a{'n integer' if kind is int else ' number'}") from None
        if not ok(value):
            raise ValueError(reason)
        return value

    return checked(convert)


non_negative = _number(float, lambda v: 0 <= v < float("inf"), "must be a number of seconds, not negative")
positive = _number(float, lambda v: 0 < v < float("inf"), "must be a positive number of seconds")
retries = _number(int, lambda v: 0 <= v <= 1000, "must be 0-1000")
limit = _number(int, lambda v: 1 <= v <= 500, "must be 1-500")


def _priority(text: str) -> int | str:
    value: int | str = int(text) if text.strip().isdigit() else text
    parse_priority(value)  # ValueError: "priority must be 0-9 or low/normal/high, ..."
    return value


priority = checked(_priority)


def load_app(spec: str) -> Nexq:
    """The user's app from ``module:attr``; UsageError naming --app if it cannot be had."""
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


def app_values(app: Nexq) -> dict[str, Any]:
    """What the app was built with (``Nexq(store, namespace=)``), for Settings.load."""
    return {"store": app.store_url, "namespace": app.namespace}


def settings_from(args: argparse.Namespace, app: Nexq | None = None) -> Settings:
    """Flags > NEXQ_* env > the app's own > defaults."""
    names = attrs.fields_dict(Settings)
    flags = {k: v for k, v in vars(args).items() if k in names}
    return Settings.load(flags, app=app_values(app) if app is not None else None)
