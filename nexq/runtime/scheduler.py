"""The scheduler service: time wheel mover and lease reaper, sweep, SAVE, cron.

Any number of schedulers may run at once on any machines: wheel buckets are
claimed with INCR, moves are guarded by NX markers, cron fires by NX
markers, so they share the work without a leader.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from ..errors import StoreError, StoreUnavailable
from ..queue import QueueBackend
from .cron import CronScheduler

log = logging.getLogger("nexq.scheduler")


class Scheduler:
    """Runs the background agents of one process in one nursery."""

    def __init__(
        self,
        broker: QueueBackend,
        cron: CronScheduler | None = None,
        *,
        save_interval: float = 0.0,
        sweep_interval: float = 10.0,
    ) -> None:
        self.broker, self.cron = broker, cron
        self.save_interval, self.sweep_interval = save_interval, sweep_interval
        self.saves = 0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._wheel_loop)
            nursery.start_soon(self._sweep_loop)
            if self.save_interval > 0:
                nursery.start_soon(self._save_loop)
            if self.cron is not None and self.cron.entries:
                await nursery.start(self.cron.run)
            task_status.started()

    async def _wheel_loop(self) -> None:
        width = self.broker.home.ctx.wheel.width
        while True:
            try:
                if await self.broker.run_due():
                    continue
            except StoreUnavailable as exc:
                log.warning("scheduler: store unavailable: %s", exc)
                await trio.sleep(1.0)
                continue
            # Sleep to just past the end of the current bucket.
            now = self.broker.clock()
            await trio.sleep(max(0.001, (now // width + 1) * width - now + 0.001))

    async def _sweep_loop(self) -> None:
        while True:
            await trio.sleep(self.sweep_interval)
            try:
                repaired = await self.broker.sweep()
                if repaired:
                    log.info("scheduler: repaired %d abandoned wheel buckets", repaired)
            except StoreUnavailable as exc:
                log.warning("sweep: store unavailable: %s", exc)

    async def _save_loop(self) -> None:
        """Ask the store to persist itself every ``save_interval`` s: a store
        crash then loses at most that window (Pogocache saves only on SAVE)."""
        while True:
            await trio.sleep(self.save_interval)
            for node in self.broker.nodes:
                if node.store.kind != "pogocache":
                    continue
                try:
                    await node.store.save()
                    self.saves += 1
                except StoreError as exc:
                    log.warning("SAVE failed: %s", exc)
