"""StoreGuard: accept only what the store can keep; detect and report evictions.

One guard per store node. Admission (:mod:`nexq.runtime.admission`): with
``--store-memory-limit`` every enqueue call is checked against Nexq's own
account of its bytes in the store before anything is written; the guard's
loop folds this process's changes into the shared account every second.

Evictions: Pogocache evicts silently once past ``--maxmemory`` (``--evict
no`` has no effect in 1.3), Redis under any ``maxmemory-policy`` but
``noeviction``, and Nexq can read neither setting (it sends only
Pogocache's commands): start-up says so once per node. Canaries catch what
gets through: every ``canary_every`` seconds the guard writes a canary key
that nothing reads and keeps it ``canary_age`` seconds; every round it
checks all of them with ``EXISTS``, which does not refresh a key's access
time on either server, so canaries stay the coldest keys and a cache
evicting least-recently-used keys takes them among the first. A missing
canary means other keys, pending tasks among them, may be gone too: it is
logged as an error, ``/healthz`` says ``degraded`` with the reason for
``EVICTION_REPORTED`` seconds, ``/metrics`` counts it
(``nexq_store_evictions_detected_total``) and the dashboard shows it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import trio

from ..errors import StoreFull
from ..hooks import Middleware, Terminal
from ..keys import Keys
from ..queue import NodeBroker
from ..store import Batch, Store
from ..task import TaskSpec
from .admission import Accounting
from .boundary import Boundary

log = logging.getLogger("nexq.guard")
_ADVISED: set[str] = set()  # the start-up advice already logged by this process
EVICTION_REPORTED = 3600.0  # seconds /healthz stays degraded after the last lost canary
MEMORY_EVERY = 30.0  # seconds between reads of the store's own memory figures (shown, not used)


def memory_used(info: dict[str, str]) -> int | None:
    """Bytes the store says it uses, from its ``info()``; None if it does not say."""
    for key in ("rss", "bytes"):
        if info.get(key, "").isdigit():
            return int(info[key])
    return None


def eviction_advice(kind: str, limit: int | None) -> str | None:
    """What to check so ``kind`` of store never evicts; None if it cannot."""
    if kind == "memory":
        return None
    own = (f"Nexq refuses new tasks near --store-memory-limit {limit / 1048576:.0f} MiB, so the store must "
           "hold that much without evicting" if limit else
           "without --store-memory-limit Nexq accepts tasks until the store is full")
    if kind == "pogocache":
        return ("Pogocache evicts keys silently, pending tasks included, once its memory passes --maxmemory "
                f"(default 80% of RAM), and Nexq cannot read that setting: start it with --maxmemory unlimited; {own}")
    return ("Redis evicts keys when full under any maxmemory-policy but noeviction, and Nexq cannot read that "
            f"setting: set maxmemory-policy noeviction (or no maxmemory); {own}")


class StoreGuard:
    """Watches one store node (see module doc); ``refusing`` says why it refuses new tasks."""

    def __init__(
        self,
        store: Store,
        keys: Keys,
        memory_limit: int | None = None,
        *,
        retention: float = 7 * 86_400.0,
        clock: Callable[[], float] = time.time,
        canary_every: float = 5.0,
        canary_age: float = 300.0,
    ) -> None:
        self.store, self.keys, self.memory_limit = store, keys, memory_limit
        self.accounting = Accounting(store, keys, memory_limit, retention, clock)
        self.canary_every, self.canary_age = canary_every, canary_age
        self._canary_ttl = canary_age + 3600  # retired at canary_age; the TTL only cleans up after a crash
        self.used: int | None = None  # the store's own memory figure, when it gives one
        self.evicted = 0  # canaries found missing
        self.evicted_at: float | None = None  # unix time of the last one
        self._canaries: deque[tuple[float, str]] = deque()  # (written at, key), oldest first
        self._next_canary = 0.0
        self._next_memory = 0.0
        self._token = f"{os.getpid()}-{os.urandom(3).hex()}"
        self._written = 0
        self._boundary = Boundary("store guard", log, cap=10.0)

    @property
    def refusing(self) -> str | None:
        return self.accounting.refusing

    @refusing.setter
    def refusing(self, why: str | None) -> None:
        """Refuse every new task with ``why`` (None: back to the account's decision)."""
        self.accounting.forced = why

    @property
    def eviction(self) -> str | None:
        """Why the store is suspect of losing keys (a canary went missing
        within ``EVICTION_REPORTED`` s), else None."""
        if self.evicted_at is None or self.accounting.clock() - self.evicted_at > EVICTION_REPORTED:
            return None
        at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.evicted_at))
        return (f"the store evicted keys ({self.evicted} canaries lost, the last at {at}): tasks may have been "
                f"lost. {eviction_advice(self.store.kind, self.memory_limit) or ''}").strip()

    @property
    def status(self) -> dict[str, Any]:
        return {
            "memory_used": self.used,
            "memory_limit": self.memory_limit,
            **self.accounting.status(),
            "evictions_detected": self.evicted,
            "eviction": self.eviction,
        }

    async def check(self) -> None:
        """One round: fold and read the account, the canaries, now and then
        the store's own memory figure. Raises StoreError."""
        await self.accounting.sync()
        await self._canary_round()
        if trio.current_time() >= self._next_memory:
            self._next_memory = trio.current_time() + MEMORY_EVERY
            self.used = memory_used(await self.store.info())

    async def _canary_round(self) -> None:
        """Every ``canary_every`` s: write a canary, check the others, retire the old."""
        now = trio.current_time()
        if now < self._next_canary:
            return
        self._next_canary = now + self.canary_every
        self._written += 1
        fresh = self.keys.canary(f"{self._token}-{self._written}")
        old = list(self._canaries)
        b = Batch().set(fresh, b"1", px=int(self._canary_ttl * 1000))
        if old:
            b.exists(*(key for _, key in old))  # EXISTS leaves the canaries cold (no access time update)
        answers = await self.store.execute(b)
        self._canaries.append((now, fresh))
        if old and answers[1] < len(old):
            b = Batch()
            for _, key in old:
                b.exists(key)
            gone = {key for (_, key), n in zip(old, await self.store.execute(b)) if not n}
            # One that outlived its TTL (this loop stalled that long) just expired.
            evicted = sum(1 for at, key in old if key in gone and now < at + self._canary_ttl - 1)
            if evicted:
                self._lost(evicted)
            self._canaries = deque(c for c in self._canaries if c[1] not in gone)
        retired = []
        while self._canaries and now - self._canaries[0][0] >= self.canary_age:
            retired.append(self._canaries.popleft()[1])
        if retired:
            await self.store.delete(*retired)

    def _lost(self, n: int) -> None:
        self.evicted += n
        self.evicted_at = self.accounting.clock()
        log.error("the store EVICTED keys (%d canaries lost, %d so far): tasks may have been lost. %s",
                  n, self.evicted, eviction_advice(self.store.kind, self.memory_limit) or "")

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Say what could make the store evict, then check every second, for ever."""
        advice = eviction_advice(self.store.kind, self.memory_limit)
        if advice and advice not in _ADVISED:  # once per process: a cluster's partitions share one advice
            _ADVISED.add(advice)
            log.warning("%s", advice)
        self.accounting.looping = True
        task_status.started()
        try:
            while True:
                async with self._boundary:
                    await self.check()
                await trio.sleep(1.0)
        finally:
            self.accounting.looping = False


def health(guards: Sequence[StoreGuard], names: Sequence[str]) -> list[str]:
    """Reasons the store nodes are degraded: evictions seen, new tasks refused."""
    out = []
    for guard, name in zip(guards, names):
        where = f"node {name}: " if len(guards) > 1 else ""
        for why in (guard.eviction, guard.refusing):
            if why:
                out.append(where + why)
    return out


def summary(guards: Sequence[StoreGuard], names: Sequence[str]) -> dict[str, Any]:
    """The store guards' state for the dashboard: degraded reasons, evictions,
    and per node the account against its budget."""
    return {
        "reasons": health(guards, names),
        "evictions_detected": sum(g.evicted for g in guards),
        "admission": [{"node": n, "accounted_bytes": g.accounting.accounted,
                       "budget_bytes": g.accounting.budget, "refusing": g.refusing is not None}
                      for g, n in zip(guards, names) if g.accounting.budget is not None],
    }


class Admission(Middleware):
    """Checks each enqueue call against its node's account (``StoreFull``)
    and keeps the account: tasks written, tasks ended."""

    def __init__(self, guards: Sequence[StoreGuard], names: Sequence[str]) -> None:
        self.accounts = [g.accounting for g in guards]
        self.names = list(names)

    def before_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        try:
            self.accounts[node.ctx.index].admit(specs)
        except StoreFull as exc:
            if len(self.accounts) == 1:
                raise
            raise StoreFull(f"node {self.names[node.ctx.index]}: {exc}") from None

    async def after_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        acct = self.accounts[node.ctx.index]
        acct.enqueued(specs)
        await acct.settle()

    async def after_terminal(self, node: NodeBroker, event: Terminal) -> None:
        acct = self.accounts[node.ctx.index]
        acct.ended(event.spec)
        await acct.settle()
