"""The scheduler service: time wheel mover and lease reaper, sweep, SAVE, cron.

Any number of schedulers may run at once on any machines: wheel buckets are
claimed with INCR, moves are guarded by NX markers, cron fires by NX
markers, so they share the work without a leader.

Every process that serves tasks runs one, so their idle cost is bounded:

- the wheel: a scheduler that claimed the bucket that just ended polls again
  right after the next one ends (due tasks are as prompt as with one
  scheduler); one that finds the bucket already taken by another backs off,
  doubling its poll interval up to ``WHEEL_IDLE_MAX`` and polling
  mid-bucket, so it does not race the active one. If the active one stops,
  a backed-off one finds the cursor behind within ``WHEEL_IDLE_MAX``,
  catches up and becomes active.
- SAVE: before each SAVE a scheduler takes ``save`` with ``SET NX PX
  interval``; only the winner saves, so a node gets one SAVE per interval
  however many processes run.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import trio

from ..errors import StoreError
from ..queue import QueueBackend
from .boundary import Boundary, Every
from .cron import CronScheduler

log = logging.getLogger("nexq.scheduler")
WHEEL_IDLE_MAX = 1.0  # seconds between wheel polls while another scheduler keeps up
SAVE_NAG = 3600.0  # seconds between repeats of a SAVE failure's warning


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
        self.saves = 0  # SAVEs this scheduler issued
        self.wheel_idle = 0.0  # 0: claims wheel buckets as they end; else its poll back-off (s)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        # Error boundaries: a store error or a malformed entry costs a backoff, never the process.
        self._wheel = Boundary("scheduler wheel", log, cap=5.0)
        self._sweep = Boundary("scheduler sweep", log, cap=sweep_interval)
        self._save_nag = Every(SAVE_NAG)

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
        caught_up = False  # the last poll handled buckets: look again before sleeping
        while True:
            handled = 0
            async with self._wheel:
                handled = await self.broker.run_due()
            if self._wheel.failures:
                continue  # the boundary logged it and waited its backoff
            if handled:
                self.wheel_idle, caught_up = 0.0, True
                continue  # more may have ended meanwhile
            if not caught_up:
                # The bucket that ended was taken by another scheduler: leave the polling to it.
                self.wheel_idle = min(WHEEL_IDLE_MAX, max(width, self.wheel_idle * 2))
            caught_up = False
            await trio.sleep(next_poll(self.broker.clock(), width, self.wheel_idle))

    async def _sweep_loop(self) -> None:
        while True:
            await trio.sleep(self.sweep_interval)
            async with self._sweep:
                repaired = await self.broker.sweep()
                if repaired:
                    log.info("scheduler: repaired %d abandoned wheel buckets", repaired)

    async def _save_loop(self) -> None:
        """Have each Pogocache node persist itself every ``save_interval`` s:
        a store crash then loses at most that window (Pogocache saves only on
        SAVE). One SAVE per interval per node, whoever wins the marker."""
        marker_ms = max(1, int(self.save_interval * 1000))
        while True:
            await trio.sleep(self.save_interval)
            for node in self.broker.nodes:
                if node.store.kind != "pogocache":
                    continue
                try:
                    if await node.store.set(node.keys.save_marker, self.id, nx=True, px=marker_ms):
                        await node.store.save()
                        self.saves += 1
                except StoreError as exc:
                    self._save_failed(node.ctx.name, exc)

    def _save_failed(self, node: str, exc: StoreError) -> None:
        """One clear line when SAVE first fails, then at most once an hour while it keeps failing."""
        held = self._save_nag.due(f"{node}:{exc}")
        if held is not None:
            again = f" (failed {held + 1} times since last said; said again in an hour)" if held else \
                " (said again in an hour while it fails)"
            log.warning("SAVE failed on store node %s: %s%s", node, save_advice(str(exc)), again)


def save_advice(error: str) -> str:
    """What a SAVE error means and what to do."""
    if "path not provided" in error:  # Pogocache's answer when it runs without --persist
        return ("Pogocache runs without --persist, so a restart loses every task: "
                "start it with --persist FILE (or pass --save-interval 0 to stop saving)")
    return f"{error}: a store crash now loses everything since the last SAVE that worked"


def next_poll(now: float, width: float, idle: float) -> float:
    """Seconds until the next wheel poll: just past the end of the current
    bucket when active (``idle`` 0), else mid-bucket ``idle`` s or more from
    ``now``, clear of the active scheduler's polls at bucket ends."""
    if idle <= 0:
        return max(0.001, (now // width + 1) * width - now + 0.001)
    at = ((now + idle) // width + 0.5) * width
    return max(0.001, at - now if at >= now + idle else at + width - now)
