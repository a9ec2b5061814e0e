"""MemoryStore: the embedded store, with Pogocache's semantics.

Every primitive behaves as on Pogocache (see ``shared/design/pogocache.md``):
SET with NX / XX / PX / GET / KEEPTTL, INCR errors on non-integers, APPEND,
lazy TTL expiry. TTLs run on trio's clock, so tests may use
``autojump_clock``; a primitive or a batch runs atomically (no other task can
interleave inside it) and then yields once, like a round trip would.

With a data directory the store is durable: each batch that changes keys is
appended to a journal with one ``write`` before the call returns, so every
acknowledged write survives SIGKILL of the process (the bytes sit in the OS
page cache; ``save()`` also fsyncs them for power loss). The journal is
compacted when it grows well past the live data.
"""

from __future__ import annotations

import heapq
import re
import time
from typing import Any

import trio

from ..errors import StoreResponseError
from .base import Batch, Key, Op, Store, Value, as_bytes, check_set_flags
from .journal import Journal

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NOT_INT = "ERR value is not an integer or out of range"
_INT_RE = re.compile(rb"-?[0-9]+")


def _key(key: Key | bytes) -> str:
    return key if isinstance(key, str) else key.decode()


class MemoryStore(Store):
    """An in-process keyspace; durable when given ``data_dir``."""

    kind = "memory"

    def __init__(
        self,
        data_dir: str | None = None,
        *,
        fsync_on_save: bool = True,
        min_compact_bytes: int = 16 << 20,
    ) -> None:
        self._data: dict[str, bytes] = {}
        self._deadline: dict[str, float] = {}  # key -> trio clock deadline
        self._heap: list[tuple[float, str]] = []  # lazy min-heap of deadlines
        self._dirty: set[str] = set()  # keys changed by the running batch
        self._journal: Journal | None = None
        self._fsync_on_save = fsync_on_save
        self._closed = False
        self.data_dir = data_dir
        if data_dir:
            self._journal = Journal(data_dir, min_compact_bytes=min_compact_bytes)
            now_wall = time.time()
            now = trio.current_time()
            for key, value, expire_wall in self._journal.load():
                self._data[key] = value
                if expire_wall:
                    self._set_deadline(key, now + (expire_wall - now_wall))

    # -- Store API ---------------------------------------------------------

    async def execute(self, batch: Batch) -> list[Any]:
        results = self._run(batch.ops)
        await trio.lowlevel.checkpoint()
        for r in results:
            if isinstance(r, StoreResponseError):
                raise r
        return results

    async def get(self, key: Key) -> bytes | None:
        await trio.lowlevel.checkpoint()
        return self._live(_key(key))

    async def mget(self, keys: Any) -> list[bytes | None]:
        await trio.lowlevel.checkpoint()
        live = self._live
        return [live(_key(k)) for k in keys]

    async def ping(self) -> float:
        start = trio.current_time()
        await trio.lowlevel.checkpoint()
        return trio.current_time() - start

    async def save(self) -> None:
        self._check_open()
        if self._journal is not None:
            self._journal.sync(fsync=self._fsync_on_save)
        await trio.lowlevel.checkpoint()

    async def info(self) -> dict[str, str]:
        self._expire_due()
        facts = {"kind": self.kind, "keys": str(len(self._data))}
        facts["bytes"] = str(sum(len(k) + len(v) + 64 for k, v in self._data.items()))
        facts["durable"] = "yes" if self._journal else "no"
        if self._journal is not None:
            facts["data_dir"] = str(self.data_dir)
            facts["journal_bytes"] = str(self._journal.size)
        return facts

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __len__(self) -> int:
        """Live keys (expired ones are dropped first)."""
        self._expire_due()
        return len(self._data)

    # -- execution ---------------------------------------------------------

    def _run(self, ops: list[Op]) -> list[Any]:
        """Run ``ops`` atomically; journal the keys they changed in one write."""
        self._check_open()
        self._expire_due()
        results: list[Any] = []
        for name, args in ops:
            try:
                results.append(getattr(self, "_op_" + name)(*args))
            except StoreResponseError as exc:
                results.append(exc)
        if self._dirty:
            if self._journal is not None:
                self._journal.write_keys(self._dirty, self._record_of)
                if self._journal.wants_compaction(len(self._data)):
                    self._journal.compact(self._all_records())
            self._dirty.clear()
        return results

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("MemoryStore is closed")

    def _record_of(self, key: str) -> tuple[bytes | None, float]:
        """(value or None if gone, wall-clock expiry or 0) for the journal."""
        value = self._data.get(key)
        deadline = self._deadline.get(key)
        if value is None or deadline is None:
            return value, 0.0
        return value, time.time() + (deadline - trio.current_time())

    def _all_records(self) -> list[tuple[str, bytes, float]]:
        out = []
        for key, value in self._data.items():
            _, wall = self._record_of(key)
            out.append((key, value, wall))
        return out

    def _live(self, key: str) -> bytes | None:
        value = self._data.get(key)
        if value is not None and key in self._deadline:
            if self._deadline[key] <= trio.current_time():
                self._drop(key)
                return None
        return value

    def _drop(self, key: str) -> None:
        self._data.pop(key, None)
        self._deadline.pop(key, None)

    def _set_deadline(self, key: str, deadline: float) -> None:
        self._deadline[key] = deadline
        heapq.heappush(self._heap, (deadline, key))

    def _expire_due(self) -> None:
        """Drop keys whose deadline passed (amortised over calls)."""
        heap, now = self._heap, trio.current_time()
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            if self._deadline.get(key) == deadline:
                self._drop(key)
        # Stale heap entries (keys re-set with another TTL) pile up under
        # churn; rebuild when they dominate.
        if len(heap) > 1024 and len(heap) > 4 * len(self._deadline):
            self._heap = [(d, k) for k, d in self._deadline.items()]
            heapq.heapify(self._heap)

    # -- primitives (names match Batch's) -----------------------------------

    def _op_get(self, key: Key) -> bytes | None:
        return self._live(_key(key))

    def _op_set(
        self, key: Key, value: Value, nx: bool, xx: bool, px: int | None, get: bool, keepttl: bool
    ) -> Any:
        check_set_flags(nx, xx, get, px, keepttl)
        k = _key(key)
        old = self._live(k)
        if (nx and old is not None) or (xx and old is None):
            return old if get else False
        self._data[k] = as_bytes(value)
        if px is not None:
            self._set_deadline(k, trio.current_time() + px / 1000)
        elif not keepttl:
            self._deadline.pop(k, None)
        self._dirty.add(k)
        return old if get else True

    def _op_mget(self, keys: tuple[Key, ...]) -> list[bytes | None]:
        return [self._live(_key(k)) for k in keys]

    def _op_delete(self, *keys: Key) -> int:
        n = 0
        for key in keys:
            k = _key(key)
            if self._live(k) is not None:
                self._drop(k)
                self._dirty.add(k)
                n += 1
        return n

    def _op_incrby(self, key: Key, amount: int) -> int:
        k = _key(key)
        old = self._live(k)
        if old is not None and (len(old) > 20 or not _INT_RE.fullmatch(old)):
            raise StoreResponseError(_NOT_INT)
        current = int(old) if old is not None else 0
        new = current + amount
        if not _INT64_MIN <= new <= _INT64_MAX:
            raise StoreResponseError("ERR increment or decrement would overflow")
        self._data[k] = str(new).encode()  # keeps any TTL, as the server does
        self._dirty.add(k)
        return new

    def _op_append(self, key: Key, value: Value) -> int:
        k = _key(key)
        new = (self._live(k) or b"") + as_bytes(value)
        self._data[k] = new
        self._dirty.add(k)
        return len(new)

    def _op_exists(self, *keys: Key) -> int:
        return sum(1 for k in keys if self._live(_key(k)) is not None)

    def _op_expire(self, key: Key, seconds: int) -> bool:
        k = _key(key)
        if self._live(k) is None:
            return False
        if seconds <= 0:
            self._drop(k)
        else:
            self._set_deadline(k, trio.current_time() + int(seconds))
        self._dirty.add(k)
        return True

    def _op_pttl(self, key: Key) -> int:
        k = _key(key)
        if self._live(k) is None:
            return -2
        deadline = self._deadline.get(k)
        if deadline is None:
            return -1
        return max(0, round((deadline - trio.current_time()) * 1000))
