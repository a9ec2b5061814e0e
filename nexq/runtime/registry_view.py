"""A producer's view of the worker registry: the live workers' doorbells
and published task types, re-read about once a second at no round trip of
its own while the producer writes.

Every enqueue path needs the workers' published defaults (to build the
request) and, after the write, their doorbell addresses (to ring them).
Reading the registry is a round trip (:meth:`WorkerRegistry.snapshot
<nexq.runtime.registry.WorkerRegistry.snapshot>`: one while nobody joined
or left, four otherwise). A snapshot is good for ``REFRESH`` s (the
doorbells' policy); after that, up to :data:`RIDE_STALE` s, it is still used
while its re-read rides along with the producer's next write
(:attr:`Producer.rider <nexq.queue.producer.Producer.rider>`), so an
enqueue every few seconds costs no round trip for it. Older, or once a
ride saw a worker join or leave, the next call reads it in full first.
Where no write can carry the re-read (a Redis Cluster: the registry lives
on one partition, the writes go to the queues' own), a client's keeper
reads it every ``REFRESH`` s instead (:meth:`RegistryView.keep_fresh`), and
calls use a snapshot up to :data:`KEPT_STALE` s old meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import StoreError
from ..queue.producer import Ride
from .doorbell import REFRESH
from .registry import Snapshot, WorkerRegistry
from .task_types import Catalog

RIDE_STALE = 30.0  # seconds a snapshot is used while its re-read rides along with writes
KEPT_STALE = 3.0  # seconds a snapshot is used while a keeper re-reads it every REFRESH s


class RegistryView:
    """The snapshot of ``registry`` one producing process (or client) keeps.

    ``riding``: the owner hands :meth:`ride` to a producer whose writes go
    to the registry's own store (else a stale snapshot is read again first).
    Not a lock: while one caller reads, the others keep the previous
    snapshot; callbacks run on the owner's thread or event loop.
    """

    def __init__(self, registry: WorkerRegistry, riding: bool = False) -> None:
        self.registry, self.riding = registry, riding
        self._snapshot: Snapshot | None = None
        self._catalog = Catalog()
        self._read_at = float("-inf")
        self.kept = False  # a keeper calls keep_fresh (set by the owner while it runs)

    async def snapshot(self, fresh: bool = False) -> Snapshot:
        """The live workers (see the module doc); read now when ``fresh``.
        A store error keeps the previous snapshot, or raises when there is
        none (or when ``fresh`` asks)."""
        last = self._snapshot
        age = time.monotonic() - self._read_at
        if last is not None and not fresh and (age < REFRESH or (self.riding and age < RIDE_STALE)
                                               or (self.kept and age < KEPT_STALE)):
            return last
        self._read_at = time.monotonic()
        try:
            snap = await self.registry.snapshot(last)
        except StoreError:
            if last is None or fresh:
                self._read_at = float("-inf")
                raise
            return last
        self._keep(last, snap)
        return snap

    def age(self) -> float:
        """Seconds since the snapshot was read (or its re-read rode along)."""
        return time.monotonic() - self._read_at

    def keep_due(self) -> bool:
        """Whether :meth:`keep_fresh` would read now (no store call)."""
        return (not self.riding and self._snapshot is not None
                and time.monotonic() - self._read_at >= REFRESH)

    async def keep_fresh(self) -> bool:
        """For a keeper, on a view no write carries the re-read of: read the
        snapshot now if it is ``REFRESH`` s old. Whether it read; raises
        StoreError."""
        if not self.keep_due():
            return False
        await self.snapshot(fresh=True)
        return True

    async def catalog(self) -> Catalog:
        """What the live workers published, from the snapshot."""
        await self.snapshot()
        return self._catalog

    async def workers(self) -> list[dict[str, Any]]:
        """The live workers' facts (their doorbells), from the snapshot."""
        return list((await self.snapshot()).infos)

    async def publications(self) -> list[dict[str, Any]]:
        """What each live worker publishes, from the snapshot."""
        return list((await self.snapshot()).publications)

    async def fresh_publications(self) -> list[dict[str, Any]]:
        """What each live worker publishes, read now."""
        return list((await self.snapshot(fresh=True)).publications)

    def ride(self) -> Ride | None:
        """The re-read for the next write to carry, once the snapshot is
        ``REFRESH`` s old (a :attr:`Producer.rider`); None while it is fresh
        or being read."""
        last = self._snapshot
        if last is None or time.monotonic() - self._read_at < REFRESH:
            return None

        def read(values: list[bytes | None]) -> None:
            again = self.registry.again(last, values)
            if again is None:
                self._read_at = float("-inf")  # a worker joined or left: the next call reads in full
            elif self._snapshot is last:
                self._read_at = time.monotonic()
                self._keep(last, again)

        return self.registry.recheck_keys(last), read

    def _keep(self, last: Snapshot | None, snap: Snapshot) -> None:
        if last is None or snap.publications != last.publications:
            self._catalog = Catalog.of(snap.publications)
        self._snapshot = snap
