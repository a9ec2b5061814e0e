"""What the parts of one node broker share: the node context.

A node broker (:mod:`nexq.queue.node`) is built from small parts, each with
one job: :class:`~nexq.queue.producer.Producer` creates tasks,
:class:`~nexq.queue.claimer.Claimer` hands attempts to workers,
:class:`~nexq.queue.outcomes.Outcomes` decides how attempts end and writes
what follows, :class:`~nexq.queue.due.Due` handles the time wheel's due
entries (promote, reap, expire). They share this context and reach each
other only through the node broker's public methods.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ..hooks import Hooks
from ..keys import Keys
from ..store import Batch, Store
from .wheel import Wheel

MINUTE_TTL = 2 * 86_400
# A terminal outcome's fin register is written with TTL R + this, so it
# outlives the follow-up check (and its repair) whatever the retention.
FIN_GRACE = 3_600


@attrs.frozen
class WebhookPolicy:
    """What the queue needs to know of webhooks: how to validate a task's
    URL, and whether a process-wide URL means every task may have delivery
    records (``hook:{id}``) to expire with it."""

    allow_private: bool = False
    default_url: bool = False


@attrs.frozen
class NodeContext:
    """The store, key names, clock, settings and hooks of one store node."""

    store: Store
    keys: Keys
    clock: Callable[[], float]
    wheel: Wheel
    hooks: Hooks
    lease_ms: int = 30_000
    retention: float = 7 * 86_400
    webhooks: WebhookPolicy = WebhookPolicy()
    minutes: MinuteCounters = attrs.field(factory=lambda: MinuteCounters())
    name: str = "node0"  # the node's URL without credentials (cluster reports)
    index: int = 0  # its position in the node list (0: the home node)

    @property
    def retention_s(self) -> int:
        """The retention in whole seconds (EXPIRE's unit), at least 1."""
        return max(1, int(self.retention))


class MinuteCounters:
    """The expiring per-minute counters ``m:{minute}:{kind}``, at one
    command per increment once warm.

    The first increment of a minute (per kind) by this process is preceded
    by ``SET m 0 NX PX ttl``: the key is only ever created with its TTL and
    ``INCR`` keeps it, so no ``EXPIRE`` per increment is needed and a crash
    between the two commands still leaves an expiring key. A minute counts
    as armed only once a batch carrying its ``SET NX`` has succeeded.
    """

    def __init__(self) -> None:
        self._armed: set[tuple[int, str]] = set()

    def incr(self, b: Batch, keys: Keys, minute: int, kind: str, n: int = 1) -> tuple[int, str] | None:
        """Add ``n`` to the counter in ``b``; returns what to pass to
        :meth:`armed` after ``b`` succeeded (None if nothing to record)."""
        key = keys.minute(minute, kind)
        if (minute, kind) in self._armed:
            b.incrby(key, n)
            return None
        b.set(key, 0, nx=True, px=MINUTE_TTL * 1000).incrby(key, n)
        return (minute, kind)

    def armed(self, token: tuple[int, str] | None) -> None:
        if token is not None:
            if len(self._armed) > 16:  # only the current minutes matter
                self._armed.clear()
            self._armed.add(token)
