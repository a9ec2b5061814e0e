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

import attrs

from ..codec import CodecError, dumps, loads
from ..keys import Keys
from ..store import Batch, Store

MAX_SLOTS = 10_000


@attrs.frozen
class Snapshot:
    """The live workers as one read saw them: ids (oldest registration
    first), their facts and their publications (decodable ones only)."""

    low: int = 0
    top: int = 0
    ids: tuple[str, ...] = ()
    infos: tuple[dict[str, Any], ...] = ()
    publications: tuple[dict[str, Any], ...] = ()


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
        return (await self._slots())[2]

    async def _slots(self) -> tuple[int, int, list[str]]:
        """The slot range read (low, top) and the live ids in it."""
        low_raw, top_raw = await self.store.mget([self.keys.worker_low, self.keys.worker_seq])
        low, top = int(low_raw or 0), int(top_raw or 0)
        low = max(low, top - MAX_SLOTS)
        slots = list(range(low + 1, top + 1))
        if not slots:
            return low, top, []
        ids = await self.store.mget([self.keys.worker_slot(n) for n in slots])
        leading_dead = 0
        for wid in ids:
            if wid is not None:
                break
            leading_dead += 1
        if leading_dead > 100:  # move the mark so later listings read less
            await self.store.set(self.keys.worker_low, low + leading_dead)
        return low, top, [w.decode() for w in ids if w is not None]

    async def publications(self) -> list[dict[str, Any]]:
        """What each live worker publishes (``types``, ``cron``, ``worker``,
        ``slot``, ``published_at``), oldest registration first; an entry
        that cannot be decoded is left out."""
        live = await self._live()
        raws = await self.store.mget([self.keys.worker_types(w) for w in live]) if live else []
        return list(_decoded(raws))

    async def snapshot(self, last: Snapshot | None = None) -> Snapshot:
        """Every live worker's facts and publication. With ``last`` (a
        producer reading again every second), one round trip while nobody
        registered or vanished since: the counters, and the slots and keys
        ``last`` read, in one ``MGET``; else the full read (+3)."""
        if last is not None:
            again = self.again(last, await self.store.mget(self.recheck_keys(last)))
            if again is not None:
                return again
        low, top, live = await self._slots()
        k = self.keys
        b = Batch().mget([k.worker(w) for w in live]).mget([k.worker_types(w) for w in live])
        infos, pubs = await self.store.execute(b) if live else ([], [])
        return Snapshot(low, top, tuple(live), _decoded(infos), _decoded(pubs))

    def recheck_keys(self, last: Snapshot) -> list[str]:
        """The keys whose values (:meth:`again`) tell whether ``last`` still holds."""
        k = self.keys
        return [k.worker_low, k.worker_seq, *[k.worker_slot(n) for n in range(last.low + 1, last.top + 1)],
                *[k.worker(w) for w in last.ids], *[k.worker_types(w) for w in last.ids]]

    def again(self, last: Snapshot, vals: list[bytes | None]) -> Snapshot | None:
        """``last`` with its workers' facts as ``vals`` (read at
        :meth:`recheck_keys`) hold them; None if a worker registered or
        vanished since (a full read is due)."""
        low_raw, top_raw = vals[0], vals[1]
        top = int(top_raw or 0)
        span = last.top - last.low
        ids = tuple(v.decode() for v in vals[2:2 + span] if v is not None)
        if (max(int(low_raw or 0), top - MAX_SLOTS), top) != (last.low, last.top) or ids != last.ids:
            return None
        n = len(ids)
        return Snapshot(last.low, last.top, ids, _decoded(vals[2 + span:2 + span + n]),
                        _decoded(vals[2 + span + n:]))

    async def list(self) -> list[dict[str, Any]]:
        """Every live worker's facts, oldest registration first."""
        live = await self._live()
        infos = await self.store.mget([self.keys.worker(w) for w in live]) if live else []
        return [loads(raw) for raw in infos if raw is not None]


def _decoded(raws: list[bytes | None]) -> tuple[dict[str, Any], ...]:
    """The JSON objects among ``raws`` (missing or undecodable ones left out)."""
    out = []
    for raw in raws:
        if raw is None:
            continue
        try:
            obj = loads(raw)
        except CodecError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return tuple(out)
