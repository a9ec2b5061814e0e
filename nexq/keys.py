"""Every key name Nexq uses; the only module that builds them.

All keys live under a namespace (default ``nexq``) so deployments and tests
share a server by prefix. ``R`` = the terminal retention (default 7 days).

| family | value | written by | TTL |
|---|---|---|---|
| ``spec:{id}`` | TaskSpec JSON | enqueue (NX) | none; R once terminal |
| ``cur:{id}`` | ``attempt|state|time`` | enqueue, then the winner of each ``fin`` | none; R once terminal |
| ``fin:{id}:{a}`` | outcome record JSON | first of ack / reaper / cancel (NX) | none; R once terminal |
| ``lease:{id}:{a}`` | ``worker|started`` | claimer (NX), heartbeats (XX) | lease (30 s) |
| ``prog:{id}`` | progress JSON | the running attempt's worker | R |
| ``hook:{id}`` | webhook delivery records, JSON lines | the delivering worker (APPEND) | R |
| ``mv:{id}:{a}`` | ``1`` | whoever moves attempt a into a lane (NX) | 1 day |
| ``uniq:{key}`` | ``id|claimed_at`` | enqueue (NX) | until terminal |
| ``lane:{q}:{p}:tail`` / ``:head`` | integer | producers (INCR) / consumers | none |
| ``lane:{q}:{p}:s:{n}`` | ``id|a``, then ``~`` | producer (NX), consumer (XX GET) | none; 1 h once taken |
| ``wheel:cursor`` | last claimed bucket | schedulers (INCR) | none |
| ``wheel:{b}`` | ``kind|id|a|extra,`` append-list | producers, reaper | deleted once read |
| ``seq`` / ``idx:{n}`` | counter / task id | enqueue | idx: R once terminal |
| ``queues`` / ``qreg:{q}`` | ``name,`` append-list / marker | first enqueue to a queue | none |
| ``paused:{q}`` | ``1`` | pause / resume | none |
| ``cnt:{q}:{state}`` | integer | each state change's single writer | none |
| ``m:{minute}:{kind}`` | integer (processed / failed) | winners of ``fin`` | 2 days |
| ``wseq`` / ``wslot:{n}`` / ``worker:{wid}`` | counter / worker id / JSON | worker registry | heartbeat TTL |
| ``cron:{name}:{t}`` | ``1`` | the scheduler that fires slot t (NX) | 1 day |
"""

from __future__ import annotations

import attrs

DEFAULT_NAMESPACE = "nexq"


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

    def cron_fire(self, name: str, t: int) -> str:
        return f"{self.ns}:cron:{name}:{t}"

    def cron_last(self, name: str) -> str:
        return f"{self.ns}:cronlast:{name}"

    @property
    def save_marker(self) -> str:
        return f"{self.ns}:saved"
