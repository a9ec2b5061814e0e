"""Ready lanes: FIFO per (queue, priority) from counters and slot keys.

Per lane: ``tail`` (INCR by producers), ``head`` (a hint: every slot <= head
is resolved), slots ``s:{n}`` holding ``id|attempt``, and the counts ``in``
(refs written) and ``out`` (refs resolved by claimers): the lane's depth is
``in - out``, since ``tail - head`` also spans slots reserved and not yet
written (a producer reserves ahead, :mod:`~nexq.queue.reservations`).

Produce: ``n = INCRBY tail k`` (or n from a reserved block); then ``SET
s:{n} ref NX``, ``GET head`` and ``INCRBY in k``. A failed NX means a consumer tombstoned the slot
(it waited too long for us): take a new one. If head >= n already, a
consumer may have moved past our slot before we wrote it, so we take the
ref back with ``SET s:{n} ~ XX GET``: getting our ref back means nobody
claimed it and we push again; ``~`` means a consumer did claim it.

Consume (:mod:`~nexq.queue.lane_reader`): ``MGET head tail`` for every
lane in one round trip; ``MGET`` of slots after head; a ref is an attempt
to lease; ``~`` means someone else took it; nil means the producer reserved
the slot but has not written it yet. A slot nil for longer than the grace
period is tombstoned with ``SET NX`` (its producer died or stalled and
retries). ``head`` only ever moves past resolved slots, so a stale head
costs a re-check, never a lost task.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar

import attrs

from ..codec import encode_ref
from ..keys import Keys
from ..store import Batch, Store

TAKEN = b"~"
TAKEN_TTL_MS = 3_600_000  # a taken slot's tombstone outlives any producer retry
PRIORITIES = tuple(range(9, -1, -1))  # claim order: 9 (high) first


@attrs.frozen
class Ref:
    """One attempt of one task, as a lane carries it."""

    task_id: str
    attempt: int


@attrs.frozen
class Pushed:
    """Where a push put one attempt: the hint a producer's doorbell ring
    carries, so a woken worker leases it at once (``Claimer.claim_pushed``)
    instead of reading the lanes first. Advisory: the lease and the slot,
    read when claiming, decide."""

    queue: str
    priority: int
    slot: int
    task_id: str
    attempt: int

    def encode(self) -> bytes:
        return f"{self.priority}|{self.slot}|{self.attempt}|{self.task_id}|{self.queue}".encode()

    @classmethod
    def decode(cls, data: bytes) -> Pushed | None:
        """The hint in ``data``; None for anything malformed (a datagram is untrusted)."""
        try:
            p, n, a, tid, q = data.decode().split("|", 4)
            return cls(q, int(p), int(n), tid, int(a)) if tid and q else None
        except ValueError:
            return None


# The single attempt the current push placed (set while its ``after_push``
# hooks run): the doorbells ring with it.
PUSHED: ContextVar[Pushed | None] = ContextVar("nexq_pushed", default=None)


@attrs.define
class LaneState:
    head: int
    tail: int
    pending: int = 0  # refs waiting (:func:`depth`): tail - head also spans empty and claimed slots


LaneRefs = dict[tuple[str, int], list[Ref]]


class Push:
    """A push split in phases so callers can share round trips with it:
    ``reserve`` (INCRBY tails) into one batch, ``fill`` (SET NX + GET head +
    the lane's written count) into the next, then ``settle`` with the
    fill's answers. Slot numbers may also come from a producer's reserved
    blocks (:mod:`~nexq.queue.reservations`): then ``fill`` is the only
    round trip."""

    def __init__(self, keys: Keys, lane_refs: LaneRefs, uncount: dict[tuple[str, int], int] | None = None) -> None:
        """``uncount``: refs of an earlier push of these lanes counted as
        written but not placed (retried here): taken off the written count."""
        self.keys = keys
        self.lanes = {lane: list(refs) for lane, refs in lane_refs.items() if refs}
        self._order = list(self.lanes)
        self._uncount = uncount or {}
        self._plan: list[tuple[tuple[str, int], int, Ref]] = []
        self._fill_at = 0
        self.lone: Pushed | None = None  # after settle: the one ref, if it went to its first slot

    def reserve(self, b: Batch) -> int:
        """Add the tail reservations; returns the index of the first answer."""
        at = len(b)
        for q, p in self._order:
            b.incrby(self.keys.lane_tail(q, p), len(self.lanes[(q, p)]))
        return at

    def fill(self, b: Batch, tails: list[int]) -> None:
        """Add the slot writes for slots reserved with :meth:`reserve` (``tails``: its answers)."""
        self.fill_slots(b, {lane: list(range(tail - len(self.lanes[lane]) + 1, tail + 1))
                            for lane, tail in zip(self._order, tails)})

    def fill_slots(self, b: Batch, slots: dict[tuple[str, int], list[int]]) -> None:
        """Add ``SET s:{n} ref NX`` for each ref (``slots[lane]``: its slot
        numbers, ascending, one per ref), ``GET head`` and ``INCRBY in``."""
        self._fill_at = len(b)
        for q, p in self._order:
            refs = self.lanes[(q, p)]
            for n, ref in zip(slots[(q, p)], refs, strict=True):
                b.set(self.keys.lane_slot(q, p, n), encode_ref(ref.task_id, ref.attempt), nx=True)
                self._plan.append(((q, p), n, ref))
            b.get(self.keys.lane_head(q, p))
            # Counted whether or not the NX wins: settle takes a lost one off again.
            b.incrby(self.keys.lane_written(q, p), len(refs) - self._uncount.get((q, p), 0))

    async def settle(self, store: Store, answers: list[object]) -> None:
        """Handle the rare cases: a tombstoned slot, or a slot a consumer may
        have moved past before we wrote it; ends when every ref is placed."""
        answers = answers[self._fill_at :]
        retry: LaneRefs = {}
        maybe_skipped: list[tuple[tuple[str, int], int, Ref]] = []
        pos = planned = 0
        for lane in self._order:
            n = len(self.lanes[lane])
            head = int(answers[pos + n] or 0)  # type: ignore[call-overload]
            for ok, item in zip(answers[pos : pos + n], self._plan[planned : planned + n]):
                if not ok:
                    retry.setdefault(lane, []).append(item[2])
                elif item[1] <= head:
                    maybe_skipped.append(item)
            pos += n + 2
            planned += n
        if maybe_skipped:
            b = Batch()
            for (q, p), n, _ in maybe_skipped:
                b.set(self.keys.lane_slot(q, p, n), TAKEN, xx=True, get=True, px=TAKEN_TTL_MS)
            for item, old in zip(maybe_skipped, await store.execute(b)):
                if old is not None and old != TAKEN:
                    retry.setdefault(item[0], []).append(item[2])  # we took it back
        if retry:
            await push(store, self.keys, retry, {lane: len(refs) for lane, refs in retry.items()})
        elif not maybe_skipped and len(self._plan) == 1:
            (q, p), n, ref = self._plan[0]
            self.lone = Pushed(q, p, n, ref.task_id, ref.attempt)


async def push(store: Store, keys: Keys, lane_refs: LaneRefs,
               uncount: dict[tuple[str, int], int] | None = None) -> None:
    """Append refs to their lanes (FIFO within a lane) in two round trips
    (more only if a consumer interfered); returns once every ref is placed."""
    p = Push(keys, lane_refs, uncount)
    if not p.lanes:
        return
    b = Batch()
    p.reserve(b)
    tails = await store.execute(b)
    b = Batch()
    p.fill(b, tails)
    await p.settle(store, await store.execute(b))


def depth_keys(keys: Keys, queue: str, priority: int) -> list[str]:
    """The four keys :func:`depth` reads for one lane, in its order."""
    return [keys.lane_head(queue, priority), keys.lane_tail(queue, priority),
            keys.lane_written(queue, priority), keys.lane_resolved(queue, priority)]


def depth(head: bytes | None, tail: bytes | None, written: bytes | None, resolved: bytes | None) -> int:
    """A lane's pending refs: written minus resolved, never above ``tail -
    head`` (which also counts reserved slots not written yet, and claimed
    ones the head has not passed) nor below 0. ``tail - head`` alone for a
    lane whose counts were never written (a store that lost them)."""
    span = int(tail or 0) - int(head or 0)
    if written is not None:
        span = min(span, int(written) - int(resolved or 0))
    return max(0, span)


async def read_lanes(
    store: Store, keys: Keys, queues: Sequence[str]
) -> tuple[dict[str, bool], dict[tuple[str, int], LaneState]]:
    """One round trip: which queues are paused, and head, tail and depth of every lane."""
    b = Batch()
    names: list[str] = [keys.paused(q) for q in queues]
    lanes = [(q, p) for q in queues for p in PRIORITIES]
    for q, p in lanes:
        names += depth_keys(keys, q, p)
    (values,) = await store.execute(b.mget(names))
    paused = {q: values[i] is not None for i, q in enumerate(queues)}
    states: dict[tuple[str, int], LaneState] = {}
    at = len(queues)
    for lane in lanes:
        head, tail = values[at], values[at + 1]
        states[lane] = LaneState(int(head or 0), int(tail or 0), depth(*values[at : at + 4]))
        at += 4
    return paused, states
