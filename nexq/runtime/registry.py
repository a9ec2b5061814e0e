"""Worker registry: who is working, where, on what; dead workers vanish.

Each worker process takes a slot number (``INCR wseq``) and keeps its keys
alive with its heartbeat: ``wslot:{n}`` (its id), ``worker:{id}`` (its
facts as JSON) and ``wtypes:{id}`` (the task types it serves with their
defaults, and its app's cron entries: see :mod:`nexq.runtime.task_types`),
all with a TTL of a few heartbeats, so a crashed worker disappears on its
own. Listing reads the slots from ``wlow`` (a low-water mark moved past
expired slots) to ``wseq``: no KEYS or SCAN. Slot numbers only grow, so
the highest is the newest registration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ..codec import CodecError, dumps, loads
from ..keys import Keys
from ..store import Batch, Store

MAX_SLOTS = 10_000


class WorkerRegistry:
    """Registers one worker process, or lists them all.

    ``publication()`` (types and cron entries, read at registration) is
    published next to the worker's facts, stamped with its slot and time.
    """

    def __init__(self, store: Store, keys: Keys, ttl: float = 15.0,
                 publication: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.store, self.keys, self.ttl_ms = store, keys, int(ttl * 1000)
        self.slot: int | None = None
        self.publication = publication
        self._published: bytes | None = None

    async def register(self, info: dict[str, Any]) -> None:
        """Take a slot and publish ``info`` (must hold ``id``)."""
        self.slot = await self.store.incr(self.keys.worker_seq)
        if self.publication is not None:
            self._published = dumps({**self.publication(), "worker": info["id"], "slot": self.slot,
                                     "published_at": time.time()})
        await self.beat(info)

    async def beat(self, info: dict[str, Any]) -> None:
        """Refresh this worker's facts and TTLs."""
        assert self.slot is not None, "register() first"
        b = Batch()
        b.set(self.keys.worker_slot(self.slot), info["id"], px=self.ttl_ms)
        b.set(self.keys.worker(info["id"]), dumps(info), px=self.ttl_ms)
        if self._published is not None:
            b.set(self.keys.worker_types(info["id"]), self._published, px=self.ttl_ms)
        await self.store.execute(b)

    async def deregister(self, worker_id: str) -> None:
        if self.slot is not None:
            await self.store.delete(self.keys.worker_slot(self.slot), self.keys.worker(worker_id),
                                    self.keys.worker_types(worker_id))

    async def _live(self) -> list[str]:
        """The ids of the live workers, oldest registration first."""
        low_raw, top_raw = await self.store.mget([self.keys.worker_low, self.keys.worker_seq])
        low, top = int(low_raw or 0), int(top_raw or 0)
        low = max(low, top - MAX_SLOTS)
        slots = list(range(low + 1, top + 1))
        if not slots:
            return []
        ids = await self.store.mget([self.keys.worker_slot(n) for n in slots])
        leading_dead = 0
        for wid in ids:
            if wid is not None:
                break
            leading_dead += 1
        if leading_dead > 100:  # move the mark so later listings read less
            await self.store.set(self.keys.worker_low, low + leading_dead)
        return [w.decode() for w in ids if w is not None]

    async def publications(self) -> list[dict[str, Any]]:
        """What each live worker publishes (``types``, ``cron``, ``worker``,
        ``slot``, ``published_at``), oldest registration first; an entry
        that cannot be decoded is left out."""
        live = await self._live()
        raws = await self.store.mget([self.keys.worker_types(w) for w in live]) if live else []
        out = []
        for raw in raws:
            if raw is None:
                continue
            try:
                pub = loads(raw)
            except CodecError:
                continue
            if isinstance(pub, dict):
                out.append(pub)
        return out

    async def list(self) -> list[dict[str, Any]]:
        """Every live worker's facts, oldest registration first."""
        live = await self._live()
        infos = await self.store.mget([self.keys.worker(w) for w in live]) if live else []
        return [loads(raw) for raw in infos if raw is not None]
