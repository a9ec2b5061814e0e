"""Replica-acknowledged writes: ``WAIT N timeout`` after a durable batch.

A store opened with ``replicas=N`` (``--store-replicas N``) follows each
batch built with ``Batch(durable=True)`` (the enqueue's records, the outcome
decision) by ``WAIT N timeout_ms`` in the same write on the same connection,
so it covers exactly the writes before it. Fewer than N acknowledgements
within the timeout raise StoreUnavailable: the caller must not count the
writes as safe from a failover. Pure functions, no I/O: every driver
(RespStore, the blocking and asyncio clients) uses these.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidStoreURL, StoreUnavailable
from .resp_commands import Command, ReplyError, store_error
from .url import StoreURL

#: milliseconds a WAIT may take by default; kept well under the command
#: timeout, because a WAIT holds up what is pipelined behind it
WAIT_MS = 1000


def check_replicas(replicas: int, url: StoreURL | None = None) -> int:
    """``replicas`` if usable on ``url``; raises ValueError (not a whole
    number >= 0) or InvalidStoreURL (a store with no replication)."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise ValueError(f"store replicas must be a whole number >= 0, got {replicas!r}")
    if replicas and url is not None and url.scheme in ("pogocache", "memory"):
        raise InvalidStoreURL(f"store replicas ({replicas}) need a replicated Redis store (redis://, rediss://, "
                              f"redis+sentinel://): {url.scheme}:// has no replicas to wait for")
    return replicas


def wait_ms(command_timeout: float) -> int:
    """The WAIT timeout for a store whose commands time out after
    ``command_timeout`` s: WAIT_MS, or less so the WAIT ends first."""
    return max(1, min(WAIT_MS, int(command_timeout * 1000 / 2)))


def wait_command(replicas: int, timeout_ms: int) -> Command:
    return ("WAIT", replicas, timeout_ms)


def check_acks(reply: Any, replicas: int, label: object) -> None:
    """Raise StoreUnavailable unless WAIT's ``reply`` counts ``replicas``
    acknowledgements (a StoreError if WAIT itself was refused)."""
    if type(reply) is ReplyError:
        raise store_error(reply)
    if not isinstance(reply, int) or reply < replicas:
        raise StoreUnavailable(
            f"{label}: only {reply} of {replicas} replicas acknowledged the write in time; "
            "it is not guaranteed to survive a failover")
