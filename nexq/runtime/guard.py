"""StoreGuard: refuse new work before the store fills up; detect evictions.

Pogocache evicts keys silently once its memory passes ``--maxmemory`` (and
``--evict no`` has no effect in 1.3). The guard reads the store's memory use
every few seconds (Pogocache: RSS from ``STATS``; the embedded store: its
data size) and, above ``memory_limit``, makes the broker refuse enqueues
with :class:`StoreFull` (the API answers 503) until usage falls again.

Evictions are detected with canaries: every ``canary_every`` seconds the
guard writes a canary key that nothing reads, and checks it once when it is
``canary_age`` seconds old (then deletes it). A cache evicts its coldest
keys first, so a missing canary means cold keys, such as long-pending
tasks, may have been dropped too: logged as an error and shown by
``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import trio

from ..errors import StoreError, StoreFull
from ..hooks import Middleware
from ..keys import Keys
from ..queue import NodeBroker
from ..store import Store
from ..task import TaskSpec

log = logging.getLogger("nexq.guard")


def memory_used(info: dict[str, str]) -> int | None:
    """Bytes the store uses, from its ``info()``; None if it does not say."""
    for key in ("rss", "bytes"):
        if info.get(key, "").isdigit():
            return int(info[key])
    return None


class StoreGuard:
    """Watches one store node; ``refusing`` says why it refuses new work (None: it accepts)."""

    def __init__(
        self,
        store: Store,
        keys: Keys,
        memory_limit: int | None = None,
        *,
        interval: float = 5.0,
        canary_every: float = 30.0,
        canary_age: float = 300.0,
    ) -> None:
        self.store, self.keys = store, keys
        self.memory_limit, self.interval = memory_limit, interval
        self.refusing: str | None = None
        self.canary_every, self.canary_age = canary_every, canary_age
        self.used: int | None = None
        self.evicted = 0  # canaries found missing
        self._canaries: deque[tuple[float, str]] = deque()
        self._next_canary = 0.0

    @property
    def status(self) -> dict[str, Any]:
        return {
            "memory_used": self.used,
            "memory_limit": self.memory_limit,
            "refusing": self.refusing,
            "evictions_detected": self.evicted,
        }

    async def check(self) -> None:
        """One round: memory against the limit, then the canaries."""
        self.used = memory_used(await self.store.info())
        if self.memory_limit and self.used is not None and self.used >= self.memory_limit:
            if not self.refusing:
                log.error("store memory %d B is over the limit %d B: refusing new tasks",
                          self.used, self.memory_limit)
            self.refusing = (
                f"the store uses {self.used} bytes, over Nexq's limit of {self.memory_limit}: "
                "new tasks are refused until workers drain the backlog or the limit is raised"
            )
        elif self.refusing:
            log.warning("store memory back under the limit: accepting new tasks")
            self.refusing = None
        await self._canary_round()

    async def _canary_round(self) -> None:
        store, keys, now = self.store, self.keys, trio.current_time()
        if now >= self._next_canary:
            key = keys.canary(f"{keys.ns}-{id(self):x}-{int(now * 1000)}")
            await store.set(key, b"1", px=int((self.canary_age + 3600) * 1000))
            self._canaries.append((now, key))
            self._next_canary = now + self.canary_every
        due = []
        while self._canaries and now - self._canaries[0][0] >= self.canary_age:
            due.append(self._canaries.popleft()[1])
        if due:
            present = await store.mget(due)
            missing = sum(1 for v in present if v is None)
            if missing:
                self.evicted += missing
                log.error(
                    "the store EVICTED keys (%d canaries gone): tasks may have been lost. "
                    "Run Pogocache with --maxmemory unlimited and give it more memory.", missing)
            await store.delete(*due)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                await self.check()
            except StoreError as exc:
                log.warning("store guard: %s", exc)
            await trio.sleep(self.interval)


class Admission(Middleware):
    """Refuses enqueues (``StoreFull``) on a node whose guard is refusing."""

    def __init__(self, guards: Sequence[StoreGuard], names: Sequence[str]) -> None:
        self.guards = list(guards)
        self.names = list(names)

    def before_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        why = self.guards[node.ctx.index].refusing
        if why:
            raise StoreFull(why if len(self.guards) == 1 else f"node {self.names[node.ctx.index]}: {why}")
