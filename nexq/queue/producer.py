"""Producing: create tasks in a constant number of round trips (see
docs/design.md, "Enqueue").

Keys: ``spec``, ``idx``/``seq``, ``cur``, lane slots, ``wheel`` buckets,
``uniq``, ``queues``/``qreg`` and the ``scheduled`` counter. Validation is
:func:`~nexq.queue.requests.make_spec`; ``before_enqueue`` hooks may refuse
a call (the store guard raises ``StoreFull``) before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..codec import encode_cur, encode_spec
from ..keys import State
from ..store import Batch
from ..task import TaskSpec
from .context import NodeContext
from .enqueue_group import MAX_JOIN, EnqueueGroup
from .lanes import PUSHED, Push, Ref
from .requests import Enqueued, EnqueueRequest, make_spec
from .reservations import Counter, Reservations
from .wheel import Entry
from .workflow import check_parents, register

if TYPE_CHECKING:
    from .node import NodeBroker

# Seconds after a unique key was claimed before a holder whose task never
# appeared counts as dead (its producer claimed the key, then died before
# writing the task one round trip later). Longer than that round trip can
# take (the store timeout is 5 s a command), short enough that an enqueue
# waiting on a dead producer's key is not stuck for long.
UNIQUE_GRACE = 15.0
# Largest jump when re-indexing past positions a set-back seq hands out
# again: below the gap reconciliation probes past seq (nexq.queue.reconcile).
CHUNK_STEP = 256


Ride = tuple[list[str], Callable[[list[bytes | None]], None]]


class Producer:
    """Creates tasks on one node (a part of :class:`~nexq.queue.node.NodeBroker`).

    ``rider``: reads that ride along with the next write instead of taking
    a round trip of their own (a client re-reading the worker registry):
    called before each write, it returns the keys to ``MGET`` in it and
    what to call with their values, or None.
    """

    rider: Callable[[], Ride | None] | None = None

    def __init__(self, ctx: NodeContext, node: NodeBroker, coalesce: bool = True) -> None:
        """``coalesce``: concurrent small enqueues share round trips
        (:mod:`~nexq.queue.enqueue_group`: under trio, or on a planned
        store's driver, :mod:`nexq.store.planned`)."""
        self.ctx, self.node = ctx, node
        self.store, self.keys, self.clock, self.wheel = ctx.store, ctx.keys, ctx.clock, ctx.wheel
        self._known_queues: set[str] = set()
        # A store driven by another transport says how its runs share a group.
        scheduling = getattr(ctx.store, "scheduling", None)
        self._coalescer = EnqueueGroup(self.write_specs, scheduling) if coalesce else None
        self.reservations = Reservations(self.keys)

    def make_spec(self, req: EnqueueRequest, now: float) -> TaskSpec:
        """Validate ``req`` (:func:`~nexq.queue.requests.make_spec`); raises ValueError."""
        return make_spec(req, now, self.ctx.webhooks)

    async def enqueue(self, type: str, payload: Any = None, **options: Any) -> Enqueued:
        """Enqueue one task; see :class:`EnqueueRequest` for the options."""
        return (await self.enqueue_many([EnqueueRequest(type, payload, **options)]))[0]

    async def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[Enqueued]:
        """Enqueue many tasks in a constant number of round trips.

        A task with a ``unique_key`` already held by a live task is not
        created; its entry names the existing task with ``created=False``.
        Raises ValueError (a bad request: nothing is written), StoreFull,
        StoreUnavailable.

        A small call whose requests name no ``task_id`` and no
        ``depends_on`` is validated here, then shares its round trips with
        the calls made at the same moment in this process
        (:mod:`nexq.queue.enqueue_group`).
        """
        now = self.clock()
        specs = [self.make_spec(r, now) for r in requests]
        self.ctx.hooks.before_enqueue(self.node, specs)
        if (self._coalescer is not None and 0 < len(specs) <= MAX_JOIN
                and not any(r.task_id or r.depends_on for r in requests)):
            return await self._coalescer.enqueue(specs)
        return await self.write_specs(specs, [bool(r.task_id) for r in requests])

    async def write_specs(self, specs: list[TaskSpec], chosen: Sequence[bool]) -> list[Enqueued]:
        """Create the tasks of validated ``specs`` (``chosen[i]``: the id of
        ``specs[i]`` was chosen by the caller); results in order."""
        now = self.clock()
        results: list[Enqueued | None] = [None] * len(specs)
        # Every check that can refuse the request runs before anything is written.
        parents = sorted({p for s in specs for p in s.depends_on})
        if parents:
            await check_parents(self.store, self.keys, parents)
        uniq = [i for i, s in enumerate(specs) if s.unique_key is not None]
        if uniq:
            b = Batch()
            for i in uniq:
                b.set(self.keys.unique(specs[i].unique_key or ""), f"{specs[i].id}|{now:.3f}", nx=True)
            won = await self.store.execute(b)
            lost = [i for i, ok in zip(uniq, won) if not ok]
            if lost:
                await self._unique_holders(specs, lost, results)
        fresh = [i for i in range(len(specs)) if results[i] is None]
        if not fresh:
            return [r for r in results if r is not None]
        explicit = [i for i in fresh if chosen[i]]
        if explicit:
            # Caller-chosen ids: claim them first, so a clash stores nothing.
            b = Batch()
            for i in explicit:
                b.set(self.keys.spec(specs[i].id), encode_spec(specs[i]), nx=True)
            taken = [specs[i].id for i, ok in zip(explicit, await self.store.execute(b)) if not ok]
            if taken:
                raise ValueError(f"a task with task_id {taken[0]!r} already exists")
        lanes: dict[tuple[str, int], list[Ref]] = {}
        for i in fresh:
            if specs[i].run_at is None and not specs[i].depends_on:
                lanes.setdefault((specs[i].queue, specs[i].priority), []).append(Ref(specs[i].id, 1))
        pusher = Push(self.keys, lanes)
        # The write batch (durable: with --store-replicas, replicas
        # acknowledge before the enqueue returns) is the only round trip
        # when reserved numbers cover the call (see _numbers).
        numbers, slots, b, refill = await self._numbers(len(fresh), lanes)
        delayed: list[Entry] = []
        spec_ops: list[int] = []
        for n, i in zip(numbers, fresh, strict=True):
            spec = _numbered(specs[i], n)
            spec_ops.append(len(b))
            b.set(self.keys.spec(spec.id), encode_spec(spec), nx=not chosen[i])
            # NX: a seq counter the store set back (a restart) must not
            # overwrite a live task's index entry (see _reindex).
            b.set(self.keys.index(n), spec.id, nx=True)
            if spec.depends_on:
                b.set(self.keys.cur(spec.id), encode_cur(1, State.WAITING, now))
            elif spec.run_at is None:
                b.set(self.keys.cur(spec.id), encode_cur(1, State.PENDING, now))
            else:
                b.set(self.keys.cur(spec.id), encode_cur(1, State.SCHEDULED, spec.run_at))
                b.incr(self.keys.count(spec.queue, State.SCHEDULED))
                delayed.append(Entry("P", spec.id, 1, spec.run_at))
            results[i] = Enqueued(spec.id, True, spec)
            if spec.expires_at is not None:
                delayed.append(Entry("X", spec.id, 1, spec.expires_at))
        if lanes:
            pusher.fill_slots(b, slots)
        answers = await self._write(b)
        if refill:
            self.reservations.reserved(refill, answers, {})
        if not all(answers[i] for i in spec_ops):
            raise ValueError("a task with that task_id already exists")
        clashed = [i for op, i in zip(spec_ops, fresh) if not answers[op + 1]]
        if clashed:
            await self._reindex(specs, clashed)
            for i in clashed:
                results[i] = Enqueued(specs[i].id, True, specs[i])
        if lanes:
            await pusher.settle(self.store, answers)
            token = PUSHED.set(pusher.lone)  # the doorbells ring with it
            try:
                await self.ctx.hooks.after_push(self.node)
            finally:
                PUSHED.reset(token)
        await self.register_queues({specs[i].queue for i in fresh})
        created = [specs[i] for i in fresh]
        await self.ctx.hooks.after_enqueue(self.node, created)
        waiting = [s for s in created if s.depends_on]
        if waiting:
            await register(self.node, waiting)
        if delayed:
            late = await self.wheel.add(delayed)
            if late:
                await self.node.handle_due(late)
        return [r for r in results if r is not None]

    async def _numbers(self, count: int, lanes: dict[tuple[str, int], list[Ref]]) -> tuple[
            list[int], dict[tuple[str, int], list[int]], Batch, list[tuple[Counter, int, int]]]:
        """Index positions for ``count`` tasks and slots for the refs of
        ``lanes``: reserved ones first (:mod:`.reservations`); for the rest one
        round trip of ``INCRBY`` (reserving ahead too). Returns them
        with the write's batch, which starts with the refills of used-up
        blocks (no round trip of their own), and what its answers refill."""
        res = self.reservations
        res.start()
        numbers = res.take(None, count)
        slots = {lane: res.take(lane, len(refs)) for lane, refs in lanes.items()}
        need: dict[Counter, int] = {lane: len(refs) - len(slots[lane]) for lane, refs in lanes.items()
                                    if len(slots[lane]) < len(refs)}
        if len(numbers) < count:
            need[None] = count - len(numbers)
        b = Batch(durable=True)
        if need:
            r = Batch()
            plan = res.reserve(r, need)
            res.tombstones(r)
            got = res.reserved(plan, await self.store.execute(r), need)
            numbers += got.get(None, [])
            for lane in slots:
                slots[lane] += got.get(lane, [])
            return numbers, slots, b, []
        plan = res.reserve(b, {})
        res.tombstones(b)
        return numbers, slots, b, plan

    async def release(self) -> None:
        """Give up this producer's reserved numbers (it closes): its unused
        slots are tombstoned at once, so no claimer waits for them."""
        b = Batch()
        self.reservations.release(b)
        if len(b):
            await self.store.execute(b)

    def warm_due(self) -> bool:
        """Whether :meth:`refresh` would write now (no store call)."""
        return bool(self.reservations.due())

    async def refresh(self) -> bool:
        """Keep an idle producer's next lone enqueue at one round trip
        (:mod:`.reservations`, "Kept warm"): renew the blocks due, tombstone
        the slots they replace, and carry the registry re-read if it is due
        (:attr:`rider`). One round trip when something is due, none
        otherwise; returns whether it wrote. Raises StoreError (the blocks
        it gave up are tombstoned by the next write, or by the claimers)."""
        b = Batch()
        plan = self.reservations.renew(b)
        if not len(b):
            return False
        self.reservations.reserved(plan, await self._write(b), {})
        return True

    async def _write(self, b: Batch) -> list[Any]:
        """Execute ``b`` with the :attr:`rider`'s reads (if due) appended;
        their answers go to the rider's callback, ``b``'s are returned."""
        ride = self.rider() if self.rider is not None else None
        if ride is None:
            return await self.store.execute(b)
        b.mget(ride[0])
        answers = await self.store.execute(b)
        ride[1](answers.pop())
        return answers

    async def _reindex(self, specs: list[TaskSpec], clashed: list[int]) -> None:
        """Give new index positions to tasks whose position was taken: the
        store lost ``seq``'s last increments (a restart) and handed out
        numbers again. Each moves past the taken range; its spec follows."""
        for i in clashed:
            step = 1
            while True:  # jump ahead, doubling: the lost range may be long
                n = await self.store.incrby(self.keys.seq, step)
                if await self.store.set(self.keys.index(n), specs[i].id, nx=True):
                    break
                step = min(step * 2, CHUNK_STEP)
            specs[i] = attrs.evolve(specs[i], seq=n)
            await self.store.set(self.keys.spec(specs[i].id), encode_spec(specs[i]))

    async def _unique_holders(
        self, specs: list[TaskSpec], lost: list[int], results: list[Enqueued | None]
    ) -> None:
        """For unique keys already held: name the holder once its task exists.

        The key (``id|claimed_at``) is taken one round trip before the
        holder's task is written, so a holder whose task is missing is
        either being written right now (its producer is one round trip
        behind: wait for it) or was never written because its producer died
        in between: after ``UNIQUE_GRACE`` seconds from the claim the key is
        taken over with ``SET XX GET``. Never two live tasks for one key.
        """
        ukeys = [self.keys.unique(specs[i].unique_key or "") for i in lost]
        ours = {s.id for s in specs}  # holders created by this very call
        todo = list(zip(lost, ukeys))
        delay = 0.002
        while todo:
            holders = [_holder(h) for h in await self.store.mget([k for _, k in todo])]
            named = [h for h, _ in holders if h is not None and h not in ours]
            alive = dict(zip(named, await self.store.mget([self.keys.spec(h) for h in named]))) if named else {}
            now, waiting = self.clock(), []
            for (i, key), (holder, claimed_at) in zip(todo, holders):
                if holder is not None and (holder in ours or alive.get(holder) is not None):
                    results[i] = Enqueued(holder, False)
                elif holder is not None and now - claimed_at < UNIQUE_GRACE:
                    waiting.append((i, key))  # its producer is writing it now
                else:
                    await self._take_over(specs[i], key, holder, results, i, now)
            todo = waiting
            if todo:
                await self.store.sleep(delay)
                delay = min(delay * 2, 0.1)

    async def _take_over(self, spec: TaskSpec, key: str, holder: str | None,
                         results: list[Enqueued | None], i: int, now: float) -> None:
        """Claim a key whose holder never came to exist (or that vanished)."""
        mine = f"{spec.id}|{now:.3f}"
        old = await self.store.set(key, mine, xx=True, get=True)
        if old is not None and _holder(old)[0] != holder:
            results[i] = Enqueued(_holder(old)[0] or "", False)  # someone else took it meanwhile
        elif old is None and not await self.store.set(key, mine, nx=True):
            results[i] = Enqueued(_holder(await self.store.get(key))[0] or "", False)

    async def register_queues(self, queues: set[str]) -> None:
        """Add queues this process has not seen to the queue list (once each, NX-guarded)."""
        new = sorted(queues - self._known_queues)
        if not new:
            return
        b = Batch()
        for q in new:
            b.set(self.keys.queue_registered(q), b"1", nx=True)
        won = await self.store.execute(b)
        b = Batch()
        for q, ok in zip(new, won):
            if ok:
                b.append(self.keys.queues, f"{q},")
        if len(b):
            await self.store.execute(b)
        self._known_queues.update(new)


def _numbered(spec: TaskSpec, n: int) -> TaskSpec:
    """``spec`` at index position ``n``. Numbered in place, not copied
    (``attrs.evolve`` is ~3.5 µs, a twentieth of a lone enqueue's CPU): the
    specs a write gets were built for this call by :meth:`Producer.make_spec`
    and are not seen by anyone until it returns (``before_enqueue`` hooks
    see them numbered 0)."""
    object.__setattr__(spec, "seq", n)
    return spec


def _holder(raw: bytes | None) -> tuple[str | None, float]:
    """A unique key's value -> (holder task id, when it was claimed); a value
    without a time (written before times were kept) counts as long ago."""
    if raw is None:
        return None, 0.0
    tid, _, at = raw.decode().partition("|")
    try:
        return tid, float(at)
    except ValueError:
        return tid, 0.0
