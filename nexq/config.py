"""Settings: flag > NEXQ_* environment variable > the app's own > default.

This is the only module that reads ``os.environ``. ``Settings.load(flags,
app=...)`` takes the CLI's parsed flags (None = not given) and fills the rest
from the environment, then from what the user's app was built with
(``Nexq(store, namespace=)``), then from defaults; bad values raise
ConfigError naming the setting and where it came from. ``Settings.origins``
says where each value came from, for the start-up log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .errors import InvalidStoreURL, NexqError
from .store.url import StoreURL, split_store_urls


class ConfigError(NexqError, ValueError):
    """A setting has a value Nexq cannot use."""


def _queues(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    out = tuple(v for v in value if v)
    if not out:
        raise ValueError("at least one queue name (or '*')")
    parse_queues(out)  # weights must be positive numbers
    return out


def parse_queues(specs: Sequence[str]) -> tuple[tuple[str, ...], dict[str, float] | None]:
    """``["mail:3", "reports:1"]`` -> names and weights (None when no weight
    is given: strict priority across queues). Raises ValueError."""
    names, weights = [], {}
    for spec in specs:
        name, _, weight = spec.partition(":")
        names.append(name)
        if weight:
            try:
                w = float(weight)
            except ValueError:
                w = 0.0
            if w <= 0:
                raise ValueError(f"queue weight in {spec!r} must be a positive number")
            weights[name] = w
    if weights and "*" in names:
        raise ValueError("weights need named queues, not '*'")
    return tuple(names), ({n: weights.get(n, 1.0) for n in names} if weights else None)



def _bounded(convert: Any, ok: Any, message: str) -> Any:
    """A converter: ``convert(value)``, refused with ``message`` unless ``ok``."""

    def check(value: Any) -> Any:
        v = convert(value)
        if not ok(v):
            raise ValueError(message)
        return v

    return check


_positive = _bounded(float, lambda v: v > 0, "must be positive")
_non_negative = _bounded(float, lambda v: v >= 0, "must not be negative")
_port = _bounded(int, lambda v: 0 <= v <= 65535, "must be a port number 0-65535")
_count = _bounded(int, lambda v: v >= 1, "must be at least 1")
_whole = _bounded(int, lambda v: v >= 0, "must be a whole number >= 0")


def cpu_count() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _processes(value: Any) -> int:
    """A number of processes, or ``auto``: one per core."""
    if str(value).strip().lower() == "auto":
        return cpu_count()
    try:
        v = int(value)
    except (TypeError, ValueError):
        v = 0
    if not 1 <= v <= 1024:
        raise ValueError("must be a number of processes (1-1024) or auto")
    return v


def _opt_count(value: Any) -> int | None:
    return None if value in (None, "") else int(_count(value))


def _level(value: Any) -> str:
    v = str(value).upper()
    if v not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be debug, info, warning, error or critical")
    return v


def _fmt(value: Any) -> str:
    v = str(value).lower()
    if v not in ("text", "json"):
        raise ValueError("must be text or json")
    return v


def _bytes(value: Any) -> int | None:
    """A size like 512M, 2G or 1048576; 0 or empty for no limit."""
    text = str(value).strip().upper()
    if text in ("", "0", "NONE"):
        return None
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "KMGT" else text
    v = int(float(number) * mult)
    if v <= 0:
        raise ValueError("must be a positive size such as 512M or 2G")
    return v


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _env_text(value: Any) -> str:
    """``value`` as the text its converter reads back (None: empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(value)
    return repr(value) if isinstance(value, float) else str(value)


# name -> (converter, default); the env variable is NEXQ_<NAME upper>.
_FIELDS: dict[str, tuple[Any, Any]] = {
    "store": (_opt_str, None),
    "api": (_opt_str, None),
    "data_dir": (str, ".nexq-data"),
    "namespace": (str, "nexq"),
    "host": (str, "127.0.0.1"),
    "port": (_port, 8080),
    "concurrency": (_count, 10),
    "processes": (_processes, 1),
    "worker_processes": (_processes, 1),
    "api_processes": (_processes, 1),
    "process_pool_size": (_opt_count, None),
    "process_max_tasks": (_count, 1000),
    "queues": (_queues, ("*",)),
    "api_token": (_opt_str, None),
    "lease": (_positive, 30.0),
    "retention": (_positive, 7 * 86_400.0),
    "save_interval": (_non_negative, 5.0),
    "reconcile_interval": (_non_negative, 30.0),
    "reconcile_grace": (_positive, 10.0),
    "max_payload_bytes": (_count, 1 << 20),
    "shutdown_grace": (_non_negative, 30.0),
    "poll_interval": (_positive, 0.05),
    "log_level": (_level, "INFO"),
    "log_format": (_fmt, "text"),
    "app": (_opt_str, None),
    "schedulers": (int, 1),
    "store_timeout": (_positive, 5.0),
    "store_replicas": (_whole, 0),
    "store_memory_limit": (lambda v: _bytes(v), None),
    "webhook_url": (_opt_str, None),
    "webhook_secret": (_opt_str, None),
    "webhook_allow_private": (lambda v: _flag(v), False),
    "webhook_on_failure": (lambda v: _flag(v), False),
}


@attrs.frozen
class Settings:
    """Everything a Nexq process is configured with."""

    store: str | None = None  # None: the embedded store in data_dir
    api: str | None = None  # the CLI talks to this running server's REST API instead of a store
    data_dir: str = ".nexq-data"
    namespace: str = "nexq"
    host: str = "127.0.0.1"
    port: int = 8080
    concurrency: int = 10
    processes: int = 1  # nexq worker: worker processes under one supervisor
    worker_processes: int = 1  # nexq run: worker processes besides the API and scheduler
    api_processes: int = 1  # nexq run: processes serving the API on host:port (SO_REUSEPORT when > 1)
    process_pool_size: int | None = None  # executor="process" handler processes (None: concurrency)
    process_max_tasks: int = 1000  # tasks a handler process runs before it is replaced
    queues: tuple[str, ...] = ("*",)
    api_token: str | None = attrs.field(default=None, repr=False)
    lease: float = 30.0
    retention: float = 7 * 86_400.0
    save_interval: float = 5.0
    reconcile_interval: float = 30.0  # seconds between reconciliation rounds (0 = off)
    reconcile_grace: float = 10.0  # how old a disagreement must be before it is repaired
    max_payload_bytes: int = 1 << 20
    shutdown_grace: float = 30.0
    poll_interval: float = 0.05
    log_level: str = "INFO"
    log_format: str = "text"
    app: str | None = None
    schedulers: int = 1
    store_timeout: float = 5.0  # seconds a store command may take before StoreUnavailable
    store_replicas: int = 0  # replicas that must acknowledge enqueues and outcomes (Redis WAIT)
    store_memory_limit: int | None = None  # bytes; above it new tasks are refused (503)
    webhook_url: str | None = None  # global webhook for every task without its own
    webhook_secret: str | None = attrs.field(default=None, repr=False)  # HMAC-SHA256 key
    webhook_allow_private: bool = False  # allow loopback / private / link-local targets
    webhook_on_failure: bool = False  # also notify each failed attempt
    # setting name -> where its value came from: "--flag", "NEXQ_X", "the app" or "default"
    origins: Mapping[str, str] = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def load(
        cls,
        flags: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        app: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Settings from ``flags`` (None values ignored), then NEXQ_* env, then
        ``app`` (the values the user's Nexq app was built with, None ignored),
        then defaults. Raises ConfigError naming the bad setting's source."""
        env = os.environ if env is None else env
        flags, app = flags or {}, app or {}
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for name, (convert, default) in _FIELDS.items():
            if flags.get(name) is not None:
                raw, source = flags[name], f"--{name.replace('_', '-')}"
            elif f"NEXQ_{name.upper()}" in env:
                raw, source = env[f"NEXQ_{name.upper()}"], f"NEXQ_{name.upper()}"
            elif app.get(name) is not None:
                raw, source = app[name], "the app"
            else:
                values[name], origins[name] = default, "default"
                continue
            try:
                values[name] = convert(raw)
            except (TypeError, ValueError) as exc:
                where = f"the app's {name}" if source == "the app" else source
                raise ConfigError(f"{where}={raw!r}: {exc}") from None
            origins[name] = source
        return cls(**values, origins=origins)

    @property
    def store_url(self) -> str:
        """The store to open: the given URL, or the embedded store in data_dir."""
        return self.store or f"memory://{os.path.abspath(self.data_dir)}"

    @property
    def store_nodes(self) -> list[StoreURL]:
        """The store node(s) ``store`` lists, in order (the first is home).
        Raises InvalidStoreURL naming ``--store`` and what is wrong."""
        try:
            nodes = split_store_urls(self.store_url)
        except InvalidStoreURL as exc:
            raise InvalidStoreURL(f"--store: {exc}") from None
        bare = [n.scheme for n in nodes if n.scheme in ("pogocache", "memory")]
        if self.store_replicas and bare:
            where = self.origins.get("store_replicas", "store_replicas")
            raise InvalidStoreURL(f"{where}={self.store_replicas}: {bare[0]}:// has no replicas to wait for; "
                                  "replica acknowledgement needs Redis (redis://, rediss://, redis+sentinel://)")
        return nodes

    def store_options(self) -> dict[str, Any]:
        """Options for open_store: timeouts for RESP stores."""
        if self.embedded:
            return {}
        options = {"command_timeout": self.store_timeout, "connect_timeout": self.store_timeout}
        return {**options, "replicas": self.store_replicas} if self.store_replicas else options

    def environ(self, **overrides: Any) -> dict[str, str]:
        """This process's environment plus the NEXQ_* variables with which
        ``Settings.load`` gives these settings (and ``overrides``) in a child
        process: how a supervisor hands its settings to worker processes
        without putting a store password on their command line."""
        env = dict(os.environ)
        for name in _FIELDS:
            env[f"NEXQ_{name.upper()}"] = _env_text(overrides.get(name, getattr(self, name)))
        return env

    @property
    def embedded(self) -> bool:
        return self.store is None or self.store.startswith("memory:")
