"""What a worker's wake-ups told it: how many came, and the attempts named.

A push in this process and a doorbell datagram each wake the worker; a
push of one attempt names it (:class:`~nexq.queue.lanes.Pushed`) so an idle
worker can lease it without reading the lanes. One push may ring twice
(in-process and by datagram): each attempt is kept once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from ..queue.lanes import Pushed

SEEN = 64  # attempts remembered to drop a second ring of
KEPT = 64  # hints kept between claim rounds


class RingInbox:
    """Counts wake-ups and keeps the hints they named (see module doc)."""

    def __init__(self) -> None:
        self.rings = 0  # wake-ups so far: one during a claim round means look again at once
        self._pushed: deque[Pushed] = deque(maxlen=KEPT)
        self._seen: dict[tuple[str, int], None] = {}  # oldest first

    def rung(self, pushed: Pushed | None) -> None:
        """A wake-up; ``pushed``: the attempt it named, if any."""
        self.rings += 1
        if pushed is None:
            return
        key = (pushed.task_id, pushed.attempt)
        if key in self._seen:
            return
        self._seen[key] = None
        if len(self._seen) > SEEN:
            del self._seen[next(iter(self._seen))]
        self._pushed.append(pushed)

    def __bool__(self) -> bool:
        return bool(self._pushed)

    def take(self, queues: Sequence[str] | None) -> list[Pushed]:
        """The hints kept, for ``queues`` (None: every queue); forgets them all."""
        hints = [h for h in self._pushed if queues is None or h.queue in queues]
        self._pushed.clear()
        return hints

    def clear(self) -> None:
        self._pushed.clear()
