"""Keep the runtime's producers warm: every lone enqueue in one round trip.

``POST /api/tasks`` and ``app.enqueue`` write with the home node's producer
(and, on several nodes, each node's). Its numbers reserved ahead expire
after a few idle seconds, and the registry snapshot the enqueue needs after
30 (:mod:`nexq.queue.reservations`, :mod:`.registry_view`); this agent
renews both in the background while the producer is idle, so the first
request after a quiet minute is one round trip like the rest. It costs
nothing while requests keep the numbers young, and one small pipeline per
node every ``WARM_AFTER`` seconds while idle. On several nodes (a Redis
Cluster's partitions) the writes to other nodes carry no registry re-read,
so it also reads the registry once its snapshot is :data:`VIEW_RENEW` s
old, before calls would have to (``RIDE_STALE``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import trio

from ..errors import StoreError
from ..queue.producer import Producer
from ..queue.reservations import WARM_TICK
from .registry_view import RegistryView

log = logging.getLogger("nexq.warm")
VIEW_RENEW = 20.0  # seconds: the registry snapshot re-read before RIDE_STALE (30 s) makes a call read it


class KeepWarm:
    """Renews ``producers``' reservations and ``view`` while they idle
    (``producers[0]`` carries the view's re-reads)."""

    def __init__(self, producers: Sequence[Producer], view: RegistryView, tick: float | None = None) -> None:
        self.producers, self.view = list(producers), view
        self.tick = WARM_TICK if tick is None else tick
        self.refreshed = 0  # pipelines written (for tests and /metrics-style counts)

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Every ``tick`` s, refresh each producer that is due; a store error
        is logged and retried at the next tick. Runs until cancelled."""
        task_status.started()
        while True:
            await trio.sleep(self.tick)
            await self.once()

    async def once(self) -> None:
        """One look at every producer (a round trip only for one that is
        due), and at the registry snapshot."""
        if self.producers and VIEW_RENEW <= self.view.age() < float("inf"):  # (inf: never read, never needed)
            try:
                await self.view.snapshot(fresh=True)
            except StoreError as exc:
                log.debug("re-reading the worker registry failed (retried): %s", exc)
        for i, producer in enumerate(self.producers):
            if not producer.warm_due():
                continue
            try:
                if i == 0:
                    await self.view.snapshot()  # read in full if a ride saw workers come or go
                if await producer.refresh():
                    self.refreshed += 1
            except StoreError as exc:
                log.debug("keeping the producer warm failed (retried): %s", exc)
