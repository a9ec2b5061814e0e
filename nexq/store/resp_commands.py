"""What RespStore may send and how Store primitives map onto RESP commands.

Pure functions and constants, no I/O: the allowlist (Pogocache's command set),
the error-reply mapping, and the translation of a :class:`~.base.Batch` into
commands and of their replies back into the answers ``base.py`` documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import CommandNotAllowed, StoreAuthError, StoreError, StoreResponseError
from .base import Batch, Key, Value, as_bytes, check_set_flags

#: Pogocache 1.3's RESP commands (its src/cmds.c table); nothing else is sent.
ALLOWED_COMMANDS = frozenset(
    "SET GET DEL MGET MGETS TTL PTTL EXPIRE SETEX DBSIZE QUIT ECHO EXISTS FLUSHDB"
    " FLUSHALL FLUSH MONITOR PURGE SWEEP KEYS SELECT PING TOUCH DEBUG INCRBY DECRBY"
    " INCR DECR UINCRBY UDECRBY UINCR UDECR APPEND PREPEND AUTH SAVE LOAD STATS"
    " VERSION SCAN".split()
)
#: allowed, but they change or end one pooled connection (MONITOR turns its
#: replies into a feed, QUIT closes it), so execute_command refuses them
CONNECTION_COMMANDS = frozenset({"AUTH", "MONITOR", "QUIT", "SELECT"})

#: keys per MGET: Pogocache caps a command at 100,000 arguments
MGET_CHUNK = 50_000

Command = tuple[Any, ...]


class ReplyError(Exception):
    """An error reply (``-ERR ...``) as hiredis builds it; never escapes Nexq."""


def store_error(reply: ReplyError, *, auth: bool = False) -> StoreError:
    """The Nexq error for an error reply: auth failures are StoreAuthError."""
    msg = str(reply)
    head = msg.split(" ", 1)[0].upper()
    if auth or head in ("NOAUTH", "WRONGPASS") or "invalid password" in msg.lower():
        return StoreAuthError(f"authentication failed: {msg}")
    return StoreResponseError(msg)


def not_allowed(name: object) -> CommandNotAllowed:
    return CommandNotAllowed(
        f"{name!s} is not a Pogocache command; Nexq only sends commands Pogocache has"
    )


def raw_command_name(name: object) -> str:
    """The upper-case name of a command for ``execute_command``.

    Raises CommandNotAllowed for a name outside the allowlist or one that
    would change a pooled connection's state.
    """
    try:
        upper = (name.decode() if isinstance(name, bytes) else str(name)).upper()
    except UnicodeDecodeError:
        raise not_allowed(name) from None
    if upper not in ALLOWED_COMMANDS:
        raise not_allowed(upper)
    if upper in CONNECTION_COMMANDS:
        raise CommandNotAllowed(
            f"{upper} changes one pooled connection's state; RespStore manages that itself"
        )
    return upper


def set_command(
    key: Key, value: Value, nx: bool, xx: bool, px: int | None, get: bool, keepttl: bool
) -> Command:
    """The SET command for Store.set's flags; raises ValueError for bad flags."""
    check_set_flags(nx, xx, get, px)
    cmd: list[Any] = ["SET", key, as_bytes(value)]
    if nx:
        cmd.append("NX")
    elif xx:
        cmd.append("XX")
    if px is not None:
        cmd += ("PX", px)
    if keepttl:
        cmd.append("KEEPTTL")
    if get:
        cmd.append("GET")
    return tuple(cmd)


def mget_commands(keys: Sequence[Key]) -> list[Command]:
    return [("MGET", *keys[i : i + MGET_CHUNK]) for i in range(0, len(keys), MGET_CHUNK)]


def flatten(chunks: list[Any]) -> list[Any]:
    return [v for chunk in chunks for v in chunk]


def _stored(reply: Any) -> bool:
    return reply is not None


# How to turn an op's replies into its answer: None = the single reply as is,
# a callable = applied to the single reply, FLATTEN = join chunked MGETs.
_FLATTEN = object()


def _op(name: str, args: tuple[Any, ...]) -> tuple[list[Command], Any]:
    """One Batch op: its commands and its converter (or constant answer if none)."""
    if name == "get":
        return [("GET", args[0])], None
    if name == "set":
        key, value, nx, xx, px, get, keepttl = args
        return [set_command(key, value, nx, xx, px, get, keepttl)], (None if get else _stored)
    if name == "mget":
        return (mget_commands(args[0]), _FLATTEN) if args[0] else ([], [])
    if name in ("delete", "exists"):
        if not args:
            return [], 0
        return [("DEL" if name == "delete" else "EXISTS", *args)], None
    if name == "incrby":
        return [("INCRBY", args[0], args[1])], None
    if name == "append":
        return [("APPEND", args[0], as_bytes(args[1]))], None
    if name == "expire":
        return [("EXPIRE", args[0], args[1])], bool
    if name == "pttl":
        return [("PTTL", args[0])], None
    raise ValueError(f"unknown batch primitive {name!r}")


class BatchPlan:
    """A Batch as RESP commands, and the way back from replies to answers."""

    def __init__(self, batch: Batch) -> None:
        """Translate ``batch``; raises ValueError (bad flags) before any I/O."""
        self.commands: list[Command] = []
        self._plan: list[tuple[int, Any]] = []
        for name, args in batch.ops:
            cmds, conv = _op(name, args)
            self.commands += cmds
            self._plan.append((len(cmds), conv))

    def answers(self, replies: list[Any]) -> list[Any]:
        """One answer per op, typed as base.py documents.

        Raises the first op's error (StoreResponseError / StoreAuthError)
        if any reply was an error.
        """
        answers: list[Any] = []
        first_error: StoreError | None = None
        pos = 0
        for n, conv in self._plan:
            if n == 0:
                answers.append(conv)
                continue
            mine = replies[pos : pos + n]
            pos += n
            bad = next((r for r in mine if type(r) is ReplyError), None)
            if bad is not None:
                answers.append(None)
                first_error = first_error or store_error(bad)
            elif conv is _FLATTEN:
                answers.append(flatten(mine))
            else:
                answers.append(mine[0] if conv is None else conv(mine[0]))
        if first_error is not None:
            raise first_error
        return answers
