"""The Store protocol: the single-key primitives the queue is built from.

Queue code talks to a :class:`Store` in Python types only (``str`` keys,
``bytes`` values, ``int``/``bool`` answers); it never sees RESP. Every
primitive maps one-to-one onto a Pogocache command, so whatever works on the
embedded store works on a real Pogocache and vice versa.

A :class:`Batch` records several primitives to run in one round trip; the
answers come back in order. A batch is not a transaction: other clients'
commands may interleave, exactly as on the server.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import trio

Key = str
Value = bytes | str | int

# One recorded primitive: (name, positional args). Names are the method names
# below; each store maps them onto its own execution.
Op = tuple[str, tuple[Any, ...]]


class Batch:
    """Primitives to send together; ``await store.execute(batch)`` runs them.

    Each method appends one primitive and returns the batch, so calls chain.
    The answer list has one entry per primitive, typed as the same-named
    :class:`Store` method would return it.
    """

    __slots__ = ("durable", "ops")

    def __init__(self, *, durable: bool = False) -> None:
        """``durable``: on a store opened with ``replicas=N`` (Redis), the
        batch is followed by ``WAIT N`` on the same connection and fails with
        StoreUnavailable unless N replicas acknowledged its writes (see
        :mod:`nexq.store.replicas`); other stores ignore it."""
        self.ops: list[Op] = []
        self.durable = durable

    def __len__(self) -> int:
        return len(self.ops)

    def get(self, key: Key) -> Batch:
        self.ops.append(("get", (key,)))
        return self

    def set(self, key: Key, value: Value, *, nx: bool = False, xx: bool = False,
            px: int | None = None, get: bool = False, keepttl: bool = False) -> Batch:
        self.ops.append(("set", (key, value, nx, xx, px, get, keepttl)))
        return self

    def mget(self, keys: Sequence[Key]) -> Batch:
        self.ops.append(("mget", (tuple(keys),)))
        return self

    def delete(self, *keys: Key) -> Batch:
        self.ops.append(("delete", keys))
        return self

    def incrby(self, key: Key, amount: int = 1) -> Batch:
        self.ops.append(("incrby", (key, amount)))
        return self

    def incr(self, key: Key) -> Batch:
        return self.incrby(key, 1)

    def append(self, key: Key, value: Value) -> Batch:
        self.ops.append(("append", (key, value)))
        return self

    def exists(self, *keys: Key) -> Batch:
        self.ops.append(("exists", keys))
        return self

    def expire(self, key: Key, seconds: int) -> Batch:
        self.ops.append(("expire", (key, seconds)))
        return self

    def pttl(self, key: Key) -> Batch:
        self.ops.append(("pttl", (key,)))
        return self


class Store(abc.ABC):
    """Async single-key primitives over one keyspace.

    Implementations: :class:`nexq.store.memory.MemoryStore` (embedded) and
    :class:`nexq.store.resp.RespStore` (Pogocache or Redis over RESP2).
    All methods raise :class:`nexq.errors.StoreUnavailable` when the store
    cannot be reached and :class:`nexq.errors.StoreResponseError` when it
    refuses a command.
    """

    #: a short name for logs and the dashboard ("memory", "pogocache", ...)
    kind: str = "store"

    @abc.abstractmethod
    async def execute(self, batch: Batch) -> list[Any]:
        """Run every primitive of ``batch`` in one round trip, in order.

        Returns one answer per primitive. If any primitive failed, every
        primitive was still sent and the first error is raised afterwards.
        """

    async def get(self, key: Key) -> bytes | None:
        """The value at ``key``, or None if it is missing or expired."""
        return (await self.execute(Batch().get(key)))[0]  # type: ignore[no-any-return]

    async def set(self, key: Key, value: Value, *, nx: bool = False, xx: bool = False,
            px: int | None = None, get: bool = False, keepttl: bool = False) -> Any:
        """Store ``value`` at ``key``.

        ``nx``: only if missing; ``xx``: only if present; ``px``: expire after
        that many milliseconds (else the key never expires, unless
        ``keepttl`` keeps the old expiry). Without ``get`` returns whether the
        value was stored; with ``get`` returns the previous value (None if
        there was none). Never combine ``nx`` and ``get`` (Pogocache answers
        nil whatever happened), which raises ValueError here.
        """
        b = Batch().set(key, value, nx=nx, xx=xx, px=px, get=get, keepttl=keepttl)
        return (await self.execute(b))[0]

    async def mget(self, keys: Sequence[Key]) -> list[bytes | None]:
        """The values at ``keys`` in order, None for each missing key."""
        if not keys:
            return []
        return (await self.execute(Batch().mget(keys)))[0]  # type: ignore[no-any-return]

    async def delete(self, *keys: Key) -> int:
        """Delete ``keys``; returns how many existed."""
        if not keys:
            return 0
        return (await self.execute(Batch().delete(*keys)))[0]  # type: ignore[no-any-return]

    async def incrby(self, key: Key, amount: int = 1) -> int:
        """Add ``amount`` to the integer at ``key`` (missing counts as 0).

        Returns the new value; raises StoreResponseError if the value is not
        an integer.
        """
        return (await self.execute(Batch().incrby(key, amount)))[0]  # type: ignore[no-any-return]

    async def incr(self, key: Key) -> int:
        """``incrby(key, 1)``."""
        return await self.incrby(key, 1)

    async def append(self, key: Key, value: Value) -> int:
        """Append ``value`` to the string at ``key``; returns the new length."""
        return (await self.execute(Batch().append(key, value)))[0]  # type: ignore[no-any-return]

    async def exists(self, *keys: Key) -> int:
        """How many of ``keys`` exist."""
        return (await self.execute(Batch().exists(*keys)))[0]  # type: ignore[no-any-return]

    async def expire(self, key: Key, seconds: int) -> bool:
        """Expire ``key`` after whole ``seconds``; False if it is missing."""
        return (await self.execute(Batch().expire(key, seconds)))[0]  # type: ignore[no-any-return]

    async def pttl(self, key: Key) -> int:
        """Milliseconds left on ``key``: -1 if it never expires, -2 if missing."""
        return (await self.execute(Batch().pttl(key)))[0]  # type: ignore[no-any-return]

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``: the one wait queue protocols make besides store
        calls. Trio's sleep here; a planned store
        (:mod:`nexq.store.planned`) hands it to its driver instead."""
        await trio.sleep(seconds)

    @abc.abstractmethod
    async def ping(self) -> float:
        """Check the store answers; returns the round trip in seconds."""

    @abc.abstractmethod
    async def save(self) -> None:
        """Make everything written so far durable (Pogocache ``SAVE``)."""

    async def info(self) -> dict[str, str]:
        """Operator facts about the store (memory, keys, version), best effort."""
        return {"kind": self.kind}

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections and files; the store is unusable afterwards."""


def as_bytes(value: Value) -> bytes:
    """Encode a value the way the server would store it."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()
    raise TypeError(f"store values are bytes, str or int, not {type(value).__name__}")


def check_set_flags(
    nx: bool, xx: bool, get: bool, px: int | None, keepttl: bool = False
) -> None:
    """Reject flag combinations that mean nothing or differ on Pogocache."""
    if keepttl and px is not None:
        raise ValueError("set: keepttl and px exclude each other")
    if nx and xx:
        raise ValueError("set: nx and xx exclude each other")
    if nx and get:
        raise ValueError("set: nx with get is unreliable on Pogocache; use one")
    if px is not None and px <= 0:
        raise ValueError(f"set: px must be positive, got {px}")
