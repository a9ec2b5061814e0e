"""What the planned-store drivers (:mod:`.blocking`, :mod:`.aio`) share:
packing allowlisted commands, AUTH, reconnect backoff, error wording.

No I/O here; each driver dials and reads its own way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from hiredis import pack_command

from ..errors import InvalidStoreURL, StoreAuthError, StoreError, StoreUnavailable
from .base import Batch
from .planned import Save
from .replicas import check_acks, check_replicas, wait_command, wait_ms
from .resp_commands import ALLOWED_COMMANDS, BatchPlan, Command, ReplyError, not_allowed, store_error
from .url import StoreURL, split_store_urls

BACKOFF_FIRST = 0.05  # seconds; doubles per failed connect, up to BACKOFF_MAX (as RespStore)
BACKOFF_MAX = 2.0
RECEIVE_SIZE = 65536
#: commands Nexq itself sends for replication and Sentinel, never queue
#: code's: they pass the Pogocache allowlist (none is sent to Pogocache)
OWN_COMMANDS = frozenset({"WAIT", "ROLE", "SENTINEL", "CLUSTER", "ASKING"})
#: outstanding commands at which a pipelined driver looks past a connection (as RespStore)
SPILL = 64


def single_node(url: str | StoreURL) -> StoreURL:
    """The one RESP server a client talks to. Raises InvalidStoreURL for the
    embedded store (it lives inside one process) and for a node list (the
    clients do not spread queues over nodes yet)."""
    nodes = [url] if isinstance(url, StoreURL) else split_store_urls(url)
    if len(nodes) > 1:
        raise InvalidStoreURL(f"nexq.Client / AsyncClient take one store URL, not a list of {len(nodes)} "
                              "cluster nodes (not supported yet): produce through the trio app or the REST API")
    parsed = nodes[0]
    if parsed.embedded:
        raise InvalidStoreURL("memory:// is the embedded store, inside one process: a client needs a shared "
                              "store (pogocache://, redis://, rediss:// or unix://) that its workers use too")
    return parsed


def wait_for(replicas: int, url: StoreURL, timeout: float) -> Command | None:
    """The WAIT a driver follows durable batches with (None for 0 replicas).
    Raises ValueError / InvalidStoreURL as :func:`.replicas.check_replicas`."""
    return wait_command(replicas, wait_ms(timeout)) if check_replicas(replicas, url) else None


def pack(commands: Sequence[Command]) -> bytes:
    """``commands`` as one RESP write; raises CommandNotAllowed (nothing
    sent) for a command Pogocache does not have."""
    for cmd in commands:
        if cmd[0] not in ALLOWED_COMMANDS and cmd[0] not in OWN_COMMANDS:
            raise not_allowed(cmd[0])
    return b"".join([pack_command(cmd) for cmd in commands])


def auth_commands(url: StoreURL) -> list[Command]:
    # Pogocache accepts only the one-argument form of AUTH.
    return [] if url.password is None else [("AUTH", url.password)]


def check_auth(reply: Any) -> None:
    """Raise StoreAuthError if the server refused the password."""
    if isinstance(reply, ReplyError):
        raise store_error(reply, auth=True)


def check_reply(reply: Any) -> Any:
    """``reply``, or the StoreError its error reply means."""
    if type(reply) is ReplyError:
        raise store_error(reply)
    return reply


def commands_of(request: Batch | Save, wait: Command | None = None,
                label: object = "the store") -> tuple[list[Command], Callable[[list[Any]], Any]]:
    """A request's RESP commands, and how their replies become its answer
    (raising the first error reply). ``wait``: the WAIT command to follow a
    durable batch with (its answer then also raises StoreUnavailable for
    too few replicas, see :mod:`.replicas`). Raises ValueError for bad SET
    flags, before any I/O."""
    if type(request) is Batch:
        plan = BatchPlan(request)
        if wait is None or not request.durable or not plan.commands:
            return plan.commands, plan.answers

        def acked(replies: list[Any]) -> list[Any]:
            answers = plan.answers(replies[:-1])
            check_acks(replies[-1], wait[1], label)
            return answers

        return [*plan.commands, wait], acked
    return [("SAVE",)], _first_reply


def _first_reply(replies: list[Any]) -> Any:
    return check_reply(replies[0])


def reason(exc: BaseException) -> str:
    """A socket error in words (``Connection refused``)."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__


def connect_failed(url: StoreURL, exc: BaseException, timeout: float) -> StoreError:
    """The StoreUnavailable a failed connect to ``url`` raises (a StoreError stays itself)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, TimeoutError):
        return StoreUnavailable(f"connecting to {url} timed out after {timeout:g} s")
    return StoreUnavailable(f"cannot connect to {url}: {reason(exc)}")


class Backoff:
    """After a failed connect, fail fast for a doubling delay (RespStore's
    policy) instead of every caller waiting on a dead server in turn."""

    def __init__(self, url: StoreURL) -> None:
        self.url = url
        self._delay = 0.0
        self._retry_at = 0.0
        self._last: StoreError | None = None

    def check(self) -> None:
        """Raise the last connect error's kind while in backoff."""
        wait = self._retry_at - time.monotonic()
        if wait > 0 and self._last is not None:
            kind = StoreAuthError if isinstance(self._last, StoreAuthError) else StoreUnavailable
            raise kind(f"{self.url}: not reconnecting for another {wait:.2f} s after: {self._last}")

    def failed(self, exc: StoreError) -> None:
        self._delay = min(max(self._delay * 2, BACKOFF_FIRST), BACKOFF_MAX)
        self._retry_at = time.monotonic() + self._delay
        self._last = exc

    def connected(self) -> None:
        self._delay = 0.0
        self._retry_at = 0.0
