"""Redis Cluster routing as plain data (sans-IO): slots, the slot map, and
one request's way through redirects.

No I/O here. A transport (:mod:`.cluster` under trio) asks a
:class:`Routing` what to send to which node, hands back each node's replies
or its failure, and repeats until the routing is done; the routing turns
``MOVED`` into a map update and a resend, ``ASK`` into ``ASKING`` + resend
(once), ``TRYAGAIN``/``CLUSTERDOWN`` and a refused connection into a retry
after the map was read again, and joins the answers of a command split by
slot (``MGET``, ``DEL``, ``EXISTS`` over several slots) back into one reply
in the caller's order.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import attrs

from ..errors import StoreUnavailable
from .resp_commands import Command, ReplyError

SLOTS = 16384
#: commands whose every argument is a key: split by slot, joined back
MULTI_KEY = frozenset({"MGET", "DEL", "EXISTS"})
#: commands without a key: sent to any node (the transport picks)
KEYLESS = frozenset({"PING", "INFO", "DBSIZE", "SAVE", "ECHO", "CLUSTER", "WAIT", "STATS", "VERSION"})
#: redirects followed per command before giving up (a map in motion settles in a few)
MAX_REDIRECTS = 5


#: seconds between rounds of a command waiting for the map to settle: doubling from, up to
PAUSE_FIRST, PAUSE_MAX = 0.02, 0.2


class NotSent(StoreUnavailable):
    """A node could not be reached and nothing was sent: safe to retry."""


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc16_table()
_TAG_SLOTS: dict[str, int] = {}  # hash tag -> slot: every key of a partition has the same tag


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def key_slot(key: str | bytes) -> int:
    """The cluster slot of ``key``: CRC16 of its hash tag (the text between
    the first ``{`` and the next ``}``, if not empty) or of the whole key."""
    if isinstance(key, bytes):
        start = key.find(b"{")
        if start >= 0:
            end = key.find(b"}", start + 1)
            if end > start + 1:
                key = key[start + 1 : end]
        return crc16(key) & (SLOTS - 1)
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            tag = key[start + 1 : end]
            slot = _TAG_SLOTS.get(tag)
            if slot is None:
                if len(_TAG_SLOTS) > 10_000:
                    _TAG_SLOTS.clear()
                slot = _TAG_SLOTS[tag] = crc16(tag.encode()) & (SLOTS - 1)
            return slot
    return crc16(key.encode()) & (SLOTS - 1)


def text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class SlotMap:
    """Which primary serves each slot, and every node the cluster named.

    Nodes are ``"host:port"`` strings.
    """

    def __init__(self, owners: Sequence[str | None], replicas: Sequence[str] = ()) -> None:
        self.owners = list(owners)
        self.primaries = sorted({o for o in owners if o is not None})
        self.replicas = sorted(set(replicas))

    @classmethod
    def empty(cls) -> SlotMap:
        return cls([None] * SLOTS)

    @classmethod
    def from_slots(cls, reply: Any, asked: str) -> SlotMap:
        """Parse a ``CLUSTER SLOTS`` reply (``asked``: the node that gave it,
        whose address stands in where the reply leaves a host empty).
        Raises StoreUnavailable for a reply that is no slot list."""
        if not isinstance(reply, list):
            raise StoreUnavailable(f"{asked}: CLUSTER SLOTS answered {reply!r}, not a slot list")
        owners: list[str | None] = [None] * SLOTS
        replicas: list[str] = []
        asked_host = asked.rsplit(":", 1)[0]
        for entry in reply:
            try:
                start, end = int(entry[0]), int(entry[1])
                nodes = [f"{text(n[0]) or asked_host}:{int(n[1])}" for n in entry[2:]]
            except (TypeError, ValueError, IndexError):
                raise StoreUnavailable(f"{asked}: CLUSTER SLOTS entry {entry!r} is not understood") from None
            if nodes and 0 <= start <= end < SLOTS:
                owners[start : end + 1] = [nodes[0]] * (end - start + 1)
                replicas += nodes[1:]
        return cls(owners, replicas)

    @property
    def covered(self) -> bool:
        """Every slot has a primary."""
        return None not in self.owners

    def node_for(self, slot: int) -> str | None:
        return self.owners[slot]

    def moved(self, slot: int, node: str) -> None:
        """A ``MOVED`` reply: ``slot`` is served by ``node`` from now on."""
        self.owners[slot] = node
        if node not in self.primaries:
            self.primaries = sorted({*self.primaries, node})


def redirect(reply: Any) -> tuple[str, int, str] | None:
    """``("MOVED"|"ASK", slot, "host:port")`` for a redirect reply, else None."""
    if type(reply) is not ReplyError:
        return None
    parts = str(reply).split()
    if len(parts) == 3 and parts[0] in ("MOVED", "ASK") and parts[1].isdigit():
        return parts[0], int(parts[1]), parts[2]
    return None


def retryable(reply: Any) -> bool:
    """An error reply meaning "not now" (a slot migrating, the cluster down
    during a failover): the command did not run and may be sent again."""
    return type(reply) is ReplyError and str(reply).split(" ", 1)[0] in ("TRYAGAIN", "CLUSTERDOWN")


class _Piece:
    """One command as sent to one slot's node."""

    __slots__ = ("asking", "command", "done", "node", "redirects", "reply", "slot")

    def __init__(self, command: Command, slot: int) -> None:
        self.command = command
        self.slot = slot
        self.node: str | None = None  # set by a redirect, else the map's owner
        self.asking = False
        self.redirects = 0
        self.reply: Any = None
        self.done = False


class Routing:
    """One list of commands on its way through the cluster (see module doc).

    Commands with one key go to their slot's node; ``MGET``/``DEL``/``EXISTS``
    over keys of several slots are split and joined back. Commands to one
    node keep their order within it (one write, replies in order).
    """

    def __init__(self, commands: Sequence[Command], slot_map: SlotMap, wait: Command | None = None) -> None:
        """``wait``: a command (``WAIT N ms``) to send after each node's
        commands; its replies, one per node written to, are in ``acks``."""
        self.map = slot_map
        self.wait_command = wait
        self.acks: list[Any] = []
        self.pieces: list[_Piece] = []
        # per command: (how to join, [(piece index, positions of its keys)])
        self._joins: list[tuple[str, list[tuple[int, list[int]]]]] = []
        self.refresh = False  # the map should be read again before the next round
        self.wait = False  # the next round should come after a pause (TRYAGAIN, CLUSTERDOWN, refused)
        for cmd in commands:
            name = cmd[0]
            if name in MULTI_KEY and len(cmd) > 2:
                groups: dict[int, list[int]] = {}
                for pos, key in enumerate(cmd[1:]):
                    groups.setdefault(key_slot(key), []).append(pos)
                if len(groups) > 1:
                    parts = []
                    for slot, positions in groups.items():
                        parts.append((len(self.pieces), positions))
                        self.pieces.append(_Piece((name, *[cmd[1 + p] for p in positions]), slot))
                    self._joins.append((name, parts))
                    continue
            slot = key_slot(cmd[1]) if len(cmd) > 1 and name not in KEYLESS else 0
            self._joins.append(("", [(len(self.pieces), [])]))
            self.pieces.append(_Piece(cmd, slot))

    @property
    def done(self) -> bool:
        return all(p.done for p in self.pieces)

    def round(self) -> dict[str, list[int]]:
        """Per node, the indexes of the pieces to send it now, in order.
        Raises StoreUnavailable if a piece's slot has no node in the map."""
        out: dict[str, list[int]] = {}
        for i, p in enumerate(self.pieces):
            if p.done:
                continue
            node = p.node or self.map.node_for(p.slot)
            if node is None:
                raise StoreUnavailable(f"no cluster node serves slot {p.slot} (the cluster is resharding or down)")
            out.setdefault(node, []).append(i)
        self.refresh = self.wait = False
        return out

    def commands(self, indexes: Sequence[int]) -> list[Command]:
        """What to send for these pieces: each command, ``ASKING`` first where asked."""
        out: list[Command] = []
        for i in indexes:
            p = self.pieces[i]
            if p.asking:
                out.append(("ASKING",))
            out.append(p.command)
        if self.wait_command is not None:
            out.append(self.wait_command)
        return out

    def replied(self, indexes: Sequence[int], replies: Sequence[Any]) -> None:
        """A node's replies to :meth:`commands` of ``indexes``."""
        if self.wait_command is not None:
            self.acks.append(replies[-1])
        it = iter(replies)
        for i in indexes:
            p = self.pieces[i]
            if p.asking:
                next(it)  # ASKING's +OK
            reply = next(it)
            p.asking, p.node = False, None
            hop = redirect(reply)
            if hop is not None and p.redirects < MAX_REDIRECTS:
                kind, slot, node = hop
                p.redirects += 1
                p.node = node
                if kind == "MOVED":
                    self.map.moved(slot, node)
                    self.refresh = True
                else:
                    p.asking = True
            elif retryable(reply) and p.redirects < MAX_REDIRECTS:
                p.redirects += 1
                self.refresh = self.wait = True
            else:
                p.reply, p.done = reply, True

    def unreachable(self, indexes: Sequence[int]) -> None:
        """These pieces were not sent (their node refused the connection):
        read the map again and retry them after a pause."""
        for i in indexes:
            self.pieces[i].node = None
        self.refresh = self.wait = True

    def replies(self) -> list[Any]:
        """One raw reply per command given, joined where it was split; an
        error reply of any part stands for the whole command."""
        out: list[Any] = []
        for how, parts in self._joins:
            if not how:
                out.append(self.pieces[parts[0][0]].reply)
                continue
            got = [(self.pieces[i].reply, positions) for i, positions in parts]
            bad = next((r for r, _ in got if type(r) is ReplyError), None)
            if bad is not None:
                out.append(bad)
            elif how == "MGET":
                values: list[Any] = [None] * sum(len(pos) for _, pos in got)
                for reply, positions in got:
                    for pos, value in zip(positions, reply, strict=True):
                        values[pos] = value
                out.append(values)
            else:  # DEL, EXISTS: counts add up
                out.append(sum(int(r) for r, _ in got))
        return out


@attrs.frozen
class Send:
    """Send each node its pieces (``Routing.commands``), in parallel where
    the transport can; hand back ``Routing.replied``, or
    ``Routing.unreachable`` for a node that raised NotSent, and raise any
    other StoreUnavailable after every node was tried."""

    sends: dict[str, list[int]]


@attrs.frozen
class Refresh:
    """Read the slot map again, then set ``Routing.map`` to it."""


@attrs.frozen
class Pause:
    """Sleep ``seconds`` before the next round."""

    seconds: float


Action = Send | Refresh | Pause


def drive(routing: Routing, retry_for: float, now: Callable[[], float]) -> Generator[Action, None, list[Any]]:
    """The rounds of ``routing`` as actions for a transport to perform, until
    its replies are all in (the generator's return value, one per command,
    plus the joined ``WAIT`` reply last if ``routing`` has one). Retries a
    slot without a node, TRYAGAIN/CLUSTERDOWN and unreachable nodes for up
    to ``retry_for`` seconds, then raises StoreUnavailable."""
    deadline = now() + retry_for
    pause = PAUSE_FIRST
    while True:
        try:
            sends = routing.round()
        except StoreUnavailable:
            if now() >= deadline:
                raise
            routing.refresh = routing.wait = True
            sends = {}
        if sends:
            yield Send(sends)
        if routing.done:
            replies = routing.replies()
            if routing.wait_command is not None:
                bad = [a for a in routing.acks if not isinstance(a, int)]
                replies.append(bad[0] if bad else min(routing.acks, default=0))
            return replies
        if routing.refresh:
            yield Refresh()
        if routing.wait:
            if now() >= deadline:
                raise StoreUnavailable("the cluster did not serve the command in time "
                                       "(a node down, no primary promoted yet?)")
            yield Pause(pause)
            pause = min(pause * 2, PAUSE_MAX)


def split_wait(commands: Sequence[Command]) -> tuple[list[Command], Command | None]:
    """``commands`` without a trailing ``WAIT`` (a durable batch's), and it:
    on a cluster it follows each node's part instead (:class:`Routing`)."""
    if commands and commands[-1][0] == "WAIT":
        return list(commands[:-1]), commands[-1]
    return list(commands), None


def node_address(node: str) -> tuple[str, int]:
    host, _, port = node.rpartition(":")
    return host, int(port)
