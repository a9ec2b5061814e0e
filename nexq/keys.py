"""Every key name Nexq uses; the only module that builds them.

All keys live under a namespace (default ``nexq``) so deployments and tests
share a server by prefix. ``R`` = the terminal retention (default 7 days).
Values of ``cur`` use the stored states of :class:`State`.

| family | value | written by | TTL |
|---|---|---|---|
| ``spec:{id}`` | TaskSpec JSON | enqueue (NX) | none; R once terminal |
| ``cur:{id}`` | ``attempt|state|time|free`` | enqueue, then the winner of each ``fin`` | none; R once terminal |
| ``fin:{id}:{a}`` | outcome record JSON | first of ack / reaper / cancel (NX) | none; R (+1 h) once terminal |
| ``lease:{id}:{a}`` | ``worker|started`` | claimer (NX), heartbeats (XX) | lease (30 s) |
| ``prog:{id}`` | progress JSON | the running attempt's worker | R |
| ``hook:{id}`` | webhook delivery records, JSON lines | the delivering worker (APPEND) | R |
| ``mv:{id}:{a}`` | ``1`` | whoever moves attempt a into a lane (NX) | 1 day |
| ``rq:{id}:{a}`` | ``1`` | whoever takes ended attempt a out of its terminal state: requeue, delete (NX) | 1 day |
| ``uniq:{key}`` | ``id|claimed_at`` | enqueue (NX) | until terminal |
| ``rp:{id}:{a}`` | ``1`` | reconciliation pushing a due attempt (NX) | 1 day |
| ``rclow`` | index position | reconciliation (a low-water hint) | none |
| ``rcturn`` / ``rcpos`` | ``1`` / index position | the process taking this interval's round (NX) / it | interval / none |
| ``probe:{process}`` | the reconciler's last token | each reconciling process (SET GET) | 3 rounds |
| ``lane:{q}:{p}:tail`` / ``:head`` | integer | producers (INCRBY) / consumers | none |
| ``lane:{q}:{p}:s:{n}`` | ``id|a``, then ``~`` | producer (NX), consumer (XX GET) | none; 1 h once taken |
| ``lane:{q}:{p}:in`` / ``:out`` | integer: refs written / resolved (depth = in - out) | producers / lease winners (INCRBY) | none |
| ``wheel:cursor`` | last claimed bucket | schedulers (INCR) | none |
| ``wheel:{b}`` | ``kind|id|a|extra,`` append-list | producers, claimers, reaper | deleted once read |
| ``seq`` / ``idx:{n}`` | counter / task id | enqueue | idx: R once terminal |
| ``queues`` / ``qreg:{q}`` | ``name,`` append-list / marker | first enqueue to a queue | none |
| ``paused:{q}`` | ``1`` | pause / resume | none |
| ``cnt:{q}:{state}`` | integer: ``scheduled`` now; lifetime totals of ``succeeded`` / ``dead`` / ``cancelled`` tasks and ``failed`` attempts | each state change's single writer | none |
| ``tc:{q}:{state}:{w}`` | tasks that ended ``state`` in window w and still exist | terminal writers (SET NX PX, INCRBY), deleters / requeuers (INCRBY -1) | until the window's tasks expire |
| ``m:{minute}:{kind}`` | integer (processed / failed) | winners of ``fin`` (SET NX PX, then INCRBY) | 2 days |
| ``deps:{child}`` | unresolved parents (integer) | the child's enqueue, then DECR per edge | none; R with the child |
| ``kids:{parent}`` | ``child,`` append-list | each child's enqueue | R once the parent ends |
| ``edge:{child}:{parent}`` | ``1`` | whoever resolves the edge first (NX) | 7 days |
| ``rel:{child}`` | ``1`` | whoever releases the child (NX) | 7 days |
| ``wseq`` / ``wlow`` / ``wslot:{n}`` / ``worker:{wid}`` | counter / lowest live slot / worker id / JSON | worker registry | heartbeat TTL |
| ``wtypes:{wid}`` | the worker's task types with their defaults, and its cron entries (JSON) | worker registry | heartbeat TTL |
| ``cron:{name}:{t}`` | ``1`` | the scheduler that fires slot t (NX) | 1 day |
| ``cronlast:{name}`` | last fire time | that scheduler | none |
| ``limit:{type}:slot:{i}`` | ``worker`` | a worker starting a limited attempt (NX) | lease |
| ``limit:{type}:tat:{n}`` | GCRA tat after start n (unix µs) | the worker taking start n (NX) | burst + interval + 10 s |
| ``limit:{type}:tat:head`` | a recent n (hint) | each ``tat:{n}`` writer | as ``tat:{n}`` |
| ``canary:{id}`` | ``1`` | the store guard | canary age + 1 h |
| ``acct:live`` / ``acct:ret:{t}`` | bytes of live tasks / of ended tasks expiring by unix time t | admission control (INCRBY) | none / until t |
| ``save`` | process id | the scheduler about to SAVE (NX) | the SAVE interval |
"""

from __future__ import annotations

import enum

import attrs

DEFAULT_NAMESPACE = "nexq"
MARKER_MS = 86_400_000  # once-only markers (mv, rq, cron fires) outlive any retry of their step
EDGE_MARKER_MS = 7 * 86_400_000  # workflow markers outlive the longest-waiting child we expect


class State(enum.StrEnum):
    """The states stored in ``cur:{id}`` (``running`` is never stored: a
    live lease on the current attempt shows it)."""

    WAITING = "waiting"
    SCHEDULED = "scheduled"
    PENDING = "pending"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({State.SUCCEEDED.value, State.DEAD.value, State.CANCELLED.value})


@attrs.frozen
class Keys:
    """Key builder for one namespace."""

    ns: str = DEFAULT_NAMESPACE

    def spec(self, tid: str) -> str:
        return f"{self.ns}:spec:{tid}"

    def cur(self, tid: str) -> str:
        return f"{self.ns}:cur:{tid}"

    def fin(self, tid: str, attempt: int) -> str:
        return f"{self.ns}:fin:{tid}:{attempt}"

    def lease(self, tid: str, attempt: int) -> str:
        return f"{self.ns}:lease:{tid}:{attempt}"

    def progress(self, tid: str) -> str:
        return f"{self.ns}:prog:{tid}"

    def hooks(self, tid: str) -> str:
        """Append-list of the task's webhook delivery records (JSON lines)."""
        return f"{self.ns}:hook:{tid}"

    def moved(self, tid: str, attempt: int) -> str:
        return f"{self.ns}:mv:{tid}:{attempt}"

    def repaired(self, tid: str, attempt: int) -> str:
        """Reconciliation pushed this due attempt (once)."""
        return f"{self.ns}:rp:{tid}:{attempt}"

    @property
    def reconcile_turn(self) -> str:
        """Taken (NX PX interval) by the process doing this interval's partial round."""
        return f"{self.ns}:rcturn"

    @property
    def reconcile_pos(self) -> str:
        """Where the next partial reconciliation round starts in the index."""
        return f"{self.ns}:rcpos"

    @property
    def reconcile_low(self) -> str:
        """Index positions below this hold no live task (a hint for reconciliation)."""
        return f"{self.ns}:rclow"

    @property
    def reconcile_recheck(self) -> str:
        """Ids of adopted orphans (``id,`` appended) for the next reconciliation round."""
        return f"{self.ns}:rccheck"

    def loss_probe(self, process: str) -> str:
        """A reconciler's own last write: finding an older value means the store lost writes."""
        return f"{self.ns}:probe:{process}"

    def requeued(self, tid: str, attempt: int) -> str:
        return f"{self.ns}:rq:{tid}:{attempt}"

    def unique(self, key: str) -> str:
        return f"{self.ns}:uniq:{key}"

    def lane(self, queue: str, priority: int) -> str:
        """Prefix of one ready lane; add ``:tail``, ``:head`` or ``:s:{n}``."""
        return f"{self.ns}:lane:{queue}:{priority}"

    @property
    def wheel_cursor(self) -> str:
        return f"{self.ns}:wheel:cursor"

    def wheel(self, bucket: int) -> str:
        return f"{self.ns}:wheel:{bucket}"

    @property
    def seq(self) -> str:
        return f"{self.ns}:seq"

    def index(self, n: int) -> str:
        return f"{self.ns}:idx:{n}"

    @property
    def queues(self) -> str:
        return f"{self.ns}:queues"

    def queue_registered(self, queue: str) -> str:
        return f"{self.ns}:qreg:{queue}"

    def paused(self, queue: str) -> str:
        return f"{self.ns}:paused:{queue}"

    def count(self, queue: str, state: str) -> str:
        return f"{self.ns}:cnt:{queue}:{state}"

    def terminal_count(self, queue: str, state: str, window: int) -> str:
        """Tasks of ``queue`` that ended ``state`` in retention window ``window``."""
        return f"{self.ns}:tc:{queue}:{state}:{window}"

    def minute(self, minute: int, kind: str) -> str:
        return f"{self.ns}:m:{minute}:{kind}"

    @property
    def worker_seq(self) -> str:
        return f"{self.ns}:wseq"

    @property
    def worker_low(self) -> str:
        return f"{self.ns}:wlow"

    def worker_slot(self, n: int) -> str:
        return f"{self.ns}:wslot:{n}"

    def worker(self, wid: str) -> str:
        return f"{self.ns}:worker:{wid}"

    def worker_types(self, wid: str) -> str:
        """What worker ``wid`` publishes: its task types' defaults and cron entries."""
        return f"{self.ns}:wtypes:{wid}"

    def cron_fire(self, name: str, t: int) -> str:
        return f"{self.ns}:cron:{name}:{t}"

    def cron_last(self, name: str) -> str:
        return f"{self.ns}:cronlast:{name}"

    def deps(self, child: str) -> str:
        return f"{self.ns}:deps:{child}"

    def kids(self, parent: str) -> str:
        return f"{self.ns}:kids:{parent}"

    def edge(self, child: str, parent: str) -> str:
        return f"{self.ns}:edge:{child}:{parent}"

    def released(self, child: str) -> str:
        return f"{self.ns}:rel:{child}"

    def limit(self, type: str, part: str) -> str:
        """``limit:{type}:slot:{i}``, ``limit:{type}:tat:{n}`` or
        ``limit:{type}:tat:head`` (``part`` is what follows the type)."""
        return f"{self.ns}:limit:{type}:{part}"

    @property
    def save_marker(self) -> str:
        """Taken (NX, PX = the SAVE interval) before each SAVE: one per interval per node."""
        return f"{self.ns}:save"

    def canary(self, name: str) -> str:
        return f"{self.ns}:canary:{name}"

    def accounting(self, part: str) -> str:
        """Admission control's byte counters: ``live``, ``ret:{t}``."""
        return f"{self.ns}:acct:{part}"

    def lane_tail(self, queue: str, priority: int) -> str:
        return f"{self.lane(queue, priority)}:tail"

    def lane_head(self, queue: str, priority: int) -> str:
        return f"{self.lane(queue, priority)}:head"

    def lane_written(self, queue: str, priority: int) -> str:
        """Refs written into the lane's slots, ever (``INCRBY`` by producers)."""
        return f"{self.lane(queue, priority)}:in"

    def lane_resolved(self, queue: str, priority: int) -> str:
        """Refs the lane's claimers resolved, ever (``INCRBY`` by the lease winners)."""
        return f"{self.lane(queue, priority)}:out"

    def lane_slot(self, queue: str, priority: int, n: int) -> str:
        return f"{self.lane(queue, priority)}:s:{n}"
