"""The time wheel: delayed tasks, retries and lease checks without sorted sets.

Time is cut into buckets ``bucket_ms`` wide; ``wheel:{b}`` is an append-list
of entries ``kind|task|attempt|extra,``. ``wheel:cursor`` is the last bucket
claimed: a scheduler takes bucket ``b = INCR cursor`` (it alone owns b),
waits until b has ended (nothing runs early), reads it, hands each entry to
the engine (moves are guarded by NX markers, so a double move is harmless),
then deletes it. Several schedulers share the work with no leader.

A producer appends, then reads the cursor in the same round trip. If the
cursor has reached its bucket the bucket may already have been read (or be
deleted right after), so the producer hands the entry on itself: due now,
it returns it as due; due later, it appends it again to a bucket past the
cursor. The server orders the commands, so no entry falls between.

A scheduler dying between ``INCR cursor`` and ``DEL`` leaves its bucket;
``sweep`` re-reads buckets behind the cursor that still exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import attrs

from ..keys import Keys
from ..store import Batch, Store
from .malformed import skipped

SWEEP_BUCKETS = 600  # how far behind the cursor a sweep looks
CATCH_UP_CHUNK = 200  # buckets claimed at once when far behind


@attrs.frozen
class Entry:
    """A wheel entry: ``kind`` P (promote attempt to a lane) or L (lease check)."""

    kind: str
    task_id: str
    attempt: int
    due: float
    extra: str = ""

    def encode(self) -> bytes:
        return f"{self.kind}|{self.task_id}|{self.attempt}|{self.due:.3f}|{self.extra},".encode()


def decode_entries(data: bytes, key: str = "wheel") -> list[Entry]:
    """The entries of a bucket; a malformed one is logged with ``key`` and skipped."""
    out = []
    for item in data.split(b","):
        if item:
            try:
                kind, tid, a, due, extra = item.decode().split("|", 4)
                out.append(Entry(kind, tid, int(a), float(due), extra))
            except ValueError as exc:  # UnicodeDecodeError too
                skipped(key, item, exc)
    return out


class Wheel:
    """Appends entries and hands out ended buckets to schedulers."""

    def __init__(self, store: Store, keys: Keys, clock: Callable[[], float], bucket_ms: int = 100):
        self.store, self.keys, self.clock = store, keys, clock
        self.width = bucket_ms / 1000

    def bucket_of(self, t: float) -> int:
        return math.floor(t / self.width)

    def bucket_end(self, b: int) -> float:
        return (b + 1) * self.width

    async def add(self, entries: Sequence[Entry]) -> list[Entry]:
        """Put entries on the wheel; returns those already due that the
        caller must hand on itself (their bucket was reached by a scheduler).
        """
        due_now: list[Entry] = []
        todo = list(entries)
        while todo:
            now = self.clock()
            b = Batch()
            # The cursor must exist before the first append, or a scheduler
            # starting later would begin past it.
            b.set(self.keys.wheel_cursor, self.bucket_of(now) - 2, nx=True)
            by_bucket: dict[int, bytearray] = {}
            for e in todo:
                by_bucket.setdefault(self.bucket_of(e.due), bytearray()).extend(e.encode())
            for bucket, data in by_bucket.items():
                b.append(self.keys.wheel(bucket), bytes(data))
            b.get(self.keys.wheel_cursor)
            answers = await self.store.execute(b)
            cursor = int(answers[-1])
            late = [e for e in todo if self.bucket_of(e.due) <= cursor]
            todo = []
            for e in late:
                if e.due <= self.clock():
                    due_now.append(e)
                else:  # append again past the cursor: late by < 2 buckets, never early
                    todo.append(attrs.evolve(e, due=max(e.due, self.bucket_end(cursor) + 1e-6)))
        return due_now

    def add_ops(self, b: Batch, entries: Sequence[Entry]) -> None:
        """Add appends of entries due well in the future (past any cursor
        overshoot, e.g. lease checks) to ``b``; no fix-up round trip needed."""
        if not entries:
            return
        b.set(self.keys.wheel_cursor, self.bucket_of(self.clock()) - 2, nx=True)
        by_bucket: dict[int, bytearray] = {}
        for e in entries:
            by_bucket.setdefault(self.bucket_of(e.due), bytearray()).extend(e.encode())
        for bucket, data in by_bucket.items():
            b.append(self.keys.wheel(bucket), bytes(data))

    async def claim_ended(self) -> list[int]:
        """Claim ended buckets for this scheduler; [] if none is due yet.

        Far behind (after downtime) it claims up to CATCH_UP_CHUNK at once.
        """
        now = self.clock()
        last_ended = self.bucket_of(now) - 1
        raw = await self.store.get(self.keys.wheel_cursor)
        if raw is None:
            await self.store.set(self.keys.wheel_cursor, last_ended - 1, nx=True)
            return []
        cursor = int(raw)
        behind = last_ended - cursor
        if behind <= 0:
            return []
        n = min(behind, CATCH_UP_CHUNK) if behind > 2 else 1
        top = await self.store.incrby(self.keys.wheel_cursor, n)
        # Racing schedulers may push the cursor past the present: such
        # buckets are ours too, read once they have ended.
        return list(range(top - n + 1, top + 1))

    async def read(self, buckets: Sequence[int]) -> list[Entry]:
        """Every entry of ``buckets`` (MGET, in chunks)."""
        out: list[Entry] = []
        for i in range(0, len(buckets), 1000):
            chunk = buckets[i : i + 1000]
            names = [self.keys.wheel(b) for b in chunk]
            for name, data in zip(names, await self.store.mget(names)):
                if data:
                    out.extend(decode_entries(data, name))
        return out

    async def drop(self, buckets: Sequence[int]) -> None:
        for i in range(0, len(buckets), 1000):
            await self.store.delete(*[self.keys.wheel(b) for b in buckets[i : i + 1000]])

    async def leftovers(self, older_than: float = 5.0) -> list[int]:
        """Buckets behind the cursor, ended over ``older_than`` s ago, still present."""
        raw = await self.store.get(self.keys.wheel_cursor)
        if raw is None:
            return []
        cursor = int(raw)
        newest = min(cursor, self.bucket_of(self.clock() - older_than))
        candidates = list(range(max(0, newest - SWEEP_BUCKETS), newest + 1))
        present = await self.store.mget([self.keys.wheel(b) for b in candidates])
        return [b for b, v in zip(candidates, present) if v]
