"""Task types: the defaults a type's tasks get, and the one function every
enqueue path builds its requests with.

Each option of a request is, in this order: the caller's value; else this
process's handler's default (``@app.task(queue=...)``); else the default the
live workers published for the type (:mod:`nexq.runtime.registry`: newest
registration wins); else :class:`~nexq.queue.EnqueueRequest`'s own. So a
process without the handler (``nexq run --no-worker``, the CLI, a producer
web app) routes ``send_email`` to the queue its workers serve.

The workers' defaults are read through :class:`TaskTypes`, a snapshot that
is read again at most every ``max_age`` seconds: enqueueing costs no store
round trip of its own.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs
import trio

from ..codec import dumps, loads
from ..errors import StoreError
from ..queue import EnqueueRequest, WebhookPolicy, make_spec
from ..task import RetryPolicy, parse_priority
from .limits import RateLimit

log = logging.getLogger("nexq.task_types")

# What a caller may pass when enqueueing (app.enqueue(**options), cron, REST).
OPTIONS = tuple(f.name for f in attrs.fields(EnqueueRequest) if f.name not in ("type", "payload"))
# The options a task type's defaults fill in.
DEFAULTED = ("queue", "priority", "max_retries", "timeout", "retry", "webhook")
REFRESH = 1.5  # seconds a snapshot of the workers' defaults is used before it is read again

Item = tuple[str, Any, Mapping[str, Any]]  # (type, payload, options)


def _priority(value: Any) -> int | None:
    return None if value is None else parse_priority(value)


@attrs.frozen
class TypeDefaults:
    """The defaults of one task type (None: not set, the next layer decides)."""

    queue: str | None = None
    priority: int | None = attrs.field(default=None, converter=_priority)
    max_retries: int | None = None
    timeout: float | None = None
    retry: RetryPolicy | None = None
    webhook: str | None = None
    concurrency_limit: int | None = None  # shown and published; enforced by the workers
    rate_limit: str | None = None

    def check(self, name: str) -> None:
        """Raise ValueError naming a default no task of type ``name`` could have."""
        probe = build_request(name, None, {}, self)
        make_spec(probe, time.time(), WebhookPolicy(allow_private=True))  # the server's setting decides that
        limit = self.concurrency_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"concurrency_limit must be an integer of at least 1, not {limit!r}")
        if self.rate_limit is not None:
            try:
                RateLimit.parse(self.rate_limit)
            except (TypeError, ValueError):
                raise ValueError(f"rate_limit must be COUNT/UNIT such as 100/m, 10/s or 5/10s, "
                                 f"not {self.rate_limit!r}") from None

    def over(self, under: TypeDefaults | None) -> TypeDefaults:
        """These defaults, with ``under``'s where these are not set."""
        if under is None:
            return self
        mine = attrs.asdict(self, recurse=False)
        return attrs.evolve(under, **{k: v for k, v in mine.items() if v is not None})

    def to_json(self) -> dict[str, Any]:
        out = attrs.asdict(self, recurse=False)
        out["retry"] = retry_json(self.retry)
        return out

    @classmethod
    def from_json(cls, data: Any, name: str) -> TypeDefaults | None:
        """The defaults a worker published; None if they are not valid here
        (another version's): they are then ignored rather than trusted."""
        if not isinstance(data, dict):
            return None
        try:
            values = {f.name: data.get(f.name) for f in attrs.fields(cls)}
            retry = values["retry"]
            values["retry"] = RetryPolicy(**retry) if isinstance(retry, dict) else None
            out = cls(**values)
            out.check(name)
        except (TypeError, ValueError):
            return None
        return out


def published(name: str, data: Any) -> TypeDefaults | None:
    """:meth:`TypeDefaults.from_json`, remembered: every refresh reads the
    same publications again, from every live worker."""
    try:
        return _published(name, dumps(data))
    except TypeError:
        return None


@functools.lru_cache(maxsize=4096)
def _published(name: str, raw: bytes) -> TypeDefaults | None:
    return TypeDefaults.from_json(loads(raw), name)


# What @app.task(...) takes: the type's defaults.
HANDLER_OPTIONS = tuple(f.name for f in attrs.fields(TypeDefaults))


def retry_json(retry: RetryPolicy | None) -> dict[str, float] | None:
    return None if retry is None else attrs.asdict(retry)


def check_options(options: Mapping[str, Any], known: Sequence[str] = OPTIONS, what: str = "option") -> None:
    """Raise ValueError naming the first of ``options`` not in ``known``."""
    for name in options:
        if name not in known:
            raise ValueError(f"unknown {what} {name!r}; the {what}s are: {', '.join(known)}")


def build_request(type: str, payload: Any, options: Mapping[str, Any],
                  *layers: TypeDefaults | None) -> EnqueueRequest:
    """The request for ``type``: each option from ``options`` (None counts
    as not given), else from the first of ``layers`` that sets it, else
    EnqueueRequest's default. Raises ValueError for an unknown option; the
    values are checked by ``make_spec`` when the request is enqueued."""
    check_options(options)
    merged = {k: v for k, v in options.items() if v is not None}
    for layer in layers:
        if layer is not None:
            for name in DEFAULTED:
                value = getattr(layer, name)
                if value is not None:
                    merged.setdefault(name, value)
    return EnqueueRequest(type, payload, **merged)


@attrs.frozen
class Catalog:
    """What the live workers published, oldest registration first, and per
    type the defaults of the newest publication naming it."""

    publications: tuple[dict[str, Any], ...] = ()
    defaults: Mapping[str, TypeDefaults] = attrs.field(factory=dict)

    @classmethod
    def of(cls, publications: Sequence[dict[str, Any]]) -> Catalog:
        pubs = tuple(sorted(publications, key=lambda p: p.get("slot", 0)))
        defaults: dict[str, TypeDefaults] = {}
        for pub in pubs:
            for name, data in (pub.get("types") or {}).items():
                parsed = published(name, data)
                if parsed is not None:
                    defaults[name] = parsed  # a newer registration overrides
        return cls(pubs, defaults)


class TaskTypes:
    """This process's handler defaults plus the live workers' ones, and the
    requests built from them (:meth:`requests`)."""

    def __init__(self, local: Mapping[str, TypeDefaults] | None = None,
                 read: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
                 max_age: float = REFRESH,
                 read_fresh: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None) -> None:
        """``read``: the live workers' publications (maybe a cached view);
        ``read_fresh``: the same read now (default: ``read``)."""
        self.local: Mapping[str, TypeDefaults] = local if local is not None else {}
        self._read, self.max_age = read, max_age
        self._read_fresh = read_fresh or read
        self._catalog: Catalog | None = None
        self._read_at = float("-inf")
        self._lock = trio.Lock()

    async def catalog(self, fresh: bool = False) -> Catalog:
        """The workers' publications: a snapshot at most ``max_age`` old, or
        read now when ``fresh``. While one task reads, the others use the
        previous snapshot. A store error keeps the previous one (the enqueue
        itself will report the store), except when ``fresh`` asks."""
        if self._read is None:
            return Catalog()
        if self._catalog is not None and not fresh and (self._lock.locked() or not self._stale()):
            return self._catalog
        async with self._lock:
            if self._catalog is None or fresh or self._stale():
                read = self._read_fresh if fresh and self._read_fresh is not None else self._read
                try:
                    self._catalog = Catalog.of(await read())
                except StoreError as exc:
                    if fresh:
                        raise
                    log.debug("could not read the workers' task types: %s", exc)
                    self._catalog = self._catalog or Catalog()
                self._read_at = trio.current_time()
            return self._catalog

    def _stale(self) -> bool:
        return trio.current_time() - self._read_at >= self.max_age

    async def requests(self, items: Sequence[Item],
                       local: Mapping[str, TypeDefaults] | None = None) -> list[EnqueueRequest]:
        """The one function every enqueue path builds its requests with (see
        the module doc). ``local`` replaces this process's handler defaults
        (an app bound to a runtime built without it). Raises ValueError
        naming an unknown option."""
        registered = (await self.catalog()).defaults
        here = self.local if local is None else local
        return [build_request(t, p, o, here.get(t), registered.get(t)) for t, p, o in items]

    async def request(self, type: str, payload: Any = None, options: Mapping[str, Any] | None = None,
                      local: Mapping[str, TypeDefaults] | None = None) -> EnqueueRequest:
        """:meth:`requests` for one task."""
        [req] = await self.requests([(type, payload, options or {})], local)
        return req

    async def describe(self) -> list[dict[str, Any]]:
        """Every type served here or by a live worker: the defaults a task
        enqueued from this process gets, who serves it, and the live
        workers' publications that disagree with the newest (``conflicts``)."""
        catalog = await self.catalog(fresh=True)
        served: dict[str, list[tuple[str, dict[str, Any] | None]]] = {}
        for pub in catalog.publications:
            for name, data in (pub.get("types") or {}).items():
                parsed = published(name, data)
                served.setdefault(name, []).append(
                    (str(pub.get("worker")), parsed.to_json() if parsed is not None else None))
        out = []
        for name in sorted(set(self.local) | set(served)):
            registered = catalog.defaults.get(name)
            local = self.local.get(name)
            newest = registered.to_json() if registered is not None else None
            out.append({
                "type": name, "defaults": effective(name, local, registered), "registered": newest,
                "local": local is not None, "workers": [w for w, _ in served.get(name, [])],
                "conflicts": conflicts(newest, served.get(name, []), "defaults"),
            })
        return out


def conflicts(shown: Any, values: Sequence[tuple[str, Any]], field: str) -> list[dict[str, Any]]:
    """The ``values`` ((worker, JSON value) pairs) other than ``shown``:
    one ``{field: value, "workers": [...]}`` per distinct value."""
    out: dict[str, dict[str, Any]] = {}
    for worker, value in values:
        if value != shown:
            out.setdefault(repr(value), {field: value, "workers": []})["workers"].append(worker)
    return list(out.values())


def effective(name: str, local: TypeDefaults | None, registered: TypeDefaults | None) -> dict[str, Any]:
    """Every default a task of type ``name`` enqueued without options gets
    (the global ones included), JSON-ready."""
    req = build_request(name, None, {}, local, registered)
    limits = local.over(registered) if local is not None else registered or TypeDefaults()
    return {
        "queue": req.queue, "priority": parse_priority(req.priority), "max_retries": req.max_retries,
        "timeout": req.timeout, "retry": retry_json(req.retry), "webhook": req.webhook,
        "concurrency_limit": limits.concurrency_limit, "rate_limit": limits.rate_limit,
    }


def publication(types: Mapping[str, TypeDefaults], cron: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What a worker publishes in the registry: its types' defaults and its
    app's cron entries (the registry adds who and when)."""
    return {"types": {name: d.to_json() for name, d in types.items()}, "cron": list(cron)}
