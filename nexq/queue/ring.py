"""Consistent hashing of queue names onto store nodes.

Each node owns ``VNODES`` points on a 64-bit circle, placed by hashing
``"{node name}#{i}"``; a queue belongs to the node owning the first point
at or after the hash of its name. Placement depends only on the set of node
names, never on their order, so every process that lists the same nodes
agrees, and adding a node moves exactly the queues whose first point is now
one of the new node's (about 1/(N+1) of them) and nothing else.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Sequence

VNODES = 160  # points per node: spreads queues within a few percent of even


def _point(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class Ring:
    """Queue name -> node name, by consistent hashing."""

    def __init__(self, nodes: Iterable[str], vnodes: int = VNODES) -> None:
        self.nodes: tuple[str, ...] = tuple(nodes)
        if not self.nodes:
            raise ValueError("a ring needs at least one node")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"node names must be distinct: {list(self.nodes)}")
        points = sorted((_point(f"{n}#{i}"), n) for n in self.nodes for i in range(vnodes))
        self._hashes = [h for h, _ in points]
        self._owners = [n for _, n in points]

    def node_for(self, queue: str) -> str:
        """The name of the node that holds ``queue``."""
        i = bisect.bisect_left(self._hashes, _point(queue))
        return self._owners[i % len(self._owners)]

    def moves(self, other: Ring, queues: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Of ``queues``, those placed differently on ``other``: name -> (here, there)."""
        out = {}
        for q in queues:
            a, b = self.node_for(q), other.node_for(q)
            if a != b:
                out[q] = (a, b)
        return out
