"""The reconciliation agent: repair what the store forgot, soon after it forgot.

Runs :class:`~nexq.queue.reconcile.Reconciler` rounds on every node: a full
round at start-up (a process starting after a store restart repairs at
once), then a partial round every ``interval`` seconds, and a full round as
soon as the store is seen to have lost a write. Loss is detected with a
probe: each round this process overwrites its own key with a new token
(``SET probe:{process} token GET PX``); getting back anything but the token
it wrote last time means the store dropped that write (a restart from an
older snapshot, or an eviction). Safe with any number of schedulers: every
repair is (see the reconcile module).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import trio

from ..queue import NodeBroker, QueueBackend
from ..queue.reconcile import Reconciler, Report
from .boundary import Boundary

log = logging.getLogger("nexq.reconcile")


class ReconcileAgent:
    """Reconciles every node of ``backend`` (see the module doc)."""

    def __init__(self, backend: QueueBackend, *, interval: float = 30.0, grace: float = 10.0) -> None:
        self.nodes = backend.nodes
        self.interval = interval
        self.reconcilers = [Reconciler(n, grace=grace) for n in self.nodes]
        self.process = os.urandom(6).hex()
        self._tokens: list[bytes | None] = [None] * len(self.nodes)
        self.totals = Report()  # every repair this process made, for /metrics and tests
        self.rounds = 0
        self.losses_detected = 0
        self._boundaries = [Boundary(f"reconciliation on {n.ctx.name}", log) for n in self.nodes]

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        full = True
        while True:
            for i, node in enumerate(self.nodes):
                async with self._boundaries[i]:  # a store error or a bad entry: logged, backed off
                    lost = await self._probe(i, node)
                    await self._round(i, full or lost)
            full = False
            await trio.sleep(self.interval)

    async def _probe(self, i: int, node: NodeBroker) -> bool:
        """Write a new token; True if the store no longer had our last one."""
        token = os.urandom(8).hex().encode()
        key = node.keys.loss_probe(self.process)
        ttl_ms = int(max(self.interval, 1.0) * 3000)
        old = await node.store.set(key, token, get=True, px=ttl_ms)
        last, self._tokens[i] = self._tokens[i], token
        if last is not None and old != last:
            self.losses_detected += 1
            log.error("store node %s lost writes (a restart or eviction): reconciling every live task",
                      node.ctx.name)
            return True
        return False

    async def _round(self, i: int, full: bool) -> None:
        # Partial rounds: one per interval for the whole deployment (a turn
        # marker), so N processes cost what one does.
        turn_ms = max(1, int(self.interval * 1000 * 0.9))
        report = await self.reconcilers[i].run(full=full, turn_ms=turn_ms)
        self.rounds += 1
        self.totals.add(report)
        if report.repairs:
            log.warning("reconciliation on %s repaired %d of %d live tasks: %s", self.nodes[i].ctx.name,
                        report.repairs, report.checked, report)
