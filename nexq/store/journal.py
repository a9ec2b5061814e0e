"""The embedded store's journal: the resulting state of each changed key.

File ``<data_dir>/journal.nxj`` is a sequence of records, each the state a
key has after a write::

    header  <B I I d>  kind (1 = set, 2 = deleted), key length, value length,
                       wall-clock expiry (0.0 = never)
    key, value
    crc32   <I>        over header + key + value

Replaying the records in order rebuilds the keyspace; because a record is a
whole state (not a delta) replay is idempotent. A torn tail (the process died
inside a ``write``) fails its length or CRC check and is cut off, so only a
write that had not returned yet can be lost. Compaction writes the live keys
to a new file, fsyncs it and renames it over the old one, so a crash at any
point leaves either the old or the new journal whole.

A lock file held with ``flock`` keeps two processes from sharing a directory.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator

from ..errors import NexqError

_HEADER = struct.Struct("<BIId")
_CRC = struct.Struct("<I")
_SET, _DEL = 1, 2
# Compact when the journal is this much larger than a rough live-size guess,
# and never below this size (small journals are cheap to replay).
_GROWTH = 4
_MIN_COMPACT_BYTES = 16 << 20


class DataDirInUse(NexqError, RuntimeError):
    """Another process already has this data directory open."""


class Journal:
    """Append-only journal of key states in one data directory."""

    def __init__(self, data_dir: str, *, min_compact_bytes: int = _MIN_COMPACT_BYTES) -> None:
        self.min_compact_bytes = min_compact_bytes
        os.makedirs(data_dir, exist_ok=True)
        self.dir = data_dir
        self.path = os.path.join(data_dir, "journal.nxj")
        self._lock_fd = os.open(os.path.join(data_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DataDirInUse(
                f"data directory {data_dir!r} is in use by another nexq process; "
                "stop it or pass another --data-dir"
            ) from None
        self._fd = -1
        self.size = 0
        self._live_guess = 0  # bytes of the last compaction, or of the load

    @staticmethod
    def locked_by_other(data_dir: str) -> bool:
        path = os.path.join(data_dir, "lock")
        if not os.path.exists(path):
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def load(self) -> Iterator[tuple[str, bytes, float]]:
        """Replay the journal: yields (key, value, wall expiry) of live keys.

        Cuts off a torn tail, then opens the file for appending.
        """
        state: dict[str, tuple[bytes, float]] = {}
        good = 0
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                data = f.read()
            good = _replay(data, state)
            if good < len(data):
                with open(self.path, "r+b") as f:
                    f.truncate(good)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = good
        self._live_guess = sum(len(k) + len(v) + 32 for k, (v, _) in state.items())
        now = time.time()
        for key, (value, expire) in state.items():
            if not expire or expire > now:
                yield key, value, expire

    def write_keys(
        self, keys: Iterable[str], record_of: Callable[[str], tuple[bytes | None, float]]
    ) -> None:
        """Append the current state of ``keys`` in one ``write`` call."""
        buf = bytearray()
        for key in keys:
            value, expire = record_of(key)
            _encode(buf, key, value, expire)
        self._write(bytes(buf))

    def wants_compaction(self, live_keys: int) -> bool:
        return self.size > max(self.min_compact_bytes, _GROWTH * self._live_guess + live_keys * 64)

    def compact(self, records: list[tuple[str, bytes, float]]) -> None:
        """Replace the journal by one holding only ``records`` (atomic rename)."""
        buf = bytearray()
        for key, value, expire in records:
            _encode(buf, key, value, expire)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, bytes(buf))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.dir)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)
        self.size = self._live_guess = len(buf)

    def sync(self, fsync: bool = True) -> None:
        if fsync and self._fd >= 0:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _write(self, data: bytes) -> None:
        _write_all(self._fd, data)
        self.size += len(data)


def _encode(buf: bytearray, key: str, value: bytes | None, expire: float) -> None:
    k = key.encode()
    start = len(buf)
    if value is None:
        buf += _HEADER.pack(_DEL, len(k), 0, 0.0)
        buf += k
    else:
        buf += _HEADER.pack(_SET, len(k), len(value), expire)
        buf += k
        buf += value
    buf += _CRC.pack(zlib.crc32(memoryview(buf)[start:]))


def _replay(data: bytes, state: dict[str, tuple[bytes, float]]) -> int:
    """Apply records from ``data`` to ``state``; returns the end of the last good one."""
    pos, n, hsize = 0, len(data), _HEADER.size
    view = memoryview(data)
    while pos + hsize <= n:
        kind, klen, vlen, expire = _HEADER.unpack_from(data, pos)
        end = pos + hsize + klen + vlen
        if kind not in (_SET, _DEL) or end + 4 > n:
            break
        (crc,) = _CRC.unpack_from(data, end)
        if zlib.crc32(view[pos:end]) != crc:
            break
        key = bytes(view[pos + hsize : pos + hsize + klen]).decode()
        if kind == _SET:
            state[key] = (bytes(view[pos + hsize + klen : end]), expire)
        else:
            state.pop(key, None)
        pos = end + 4
    return pos


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
