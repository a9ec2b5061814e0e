"""What a listing matches: the filters of ``Inspector.list`` and their cost.

A listing walks the ``idx:{n}`` index newest first (no KEYS or SCAN), so a
filter costs what it walks, not what it finds: one call walks at most
``walk`` index entries (:data:`SCAN_LIMIT` for a page) and returns a cursor
where it stopped. Every filter is checked on the task as read back; the
text search also encodes the payload (only when the type and queue did not
already match). A lower time bound (``created_after``) ends the walk early:
the index is in enqueue order, so once a whole chunk is older than the
bound (less :data:`CLOCK_SKEW`, for producers whose clocks disagree) nothing
further back can match.
"""

from __future__ import annotations

import attrs
import orjson

from ..task import Task

SCAN_CHUNK = 200  # index entries read per round trip
SCAN_LIMIT = 5_000  # index entries one page may walk before returning a cursor
CLOCK_SKEW = 60.0  # seconds producers' clocks may disagree by (enqueue order vs created_at)


@attrs.frozen
class TaskFilter:
    """Conditions a listed task meets (None: any). ``text`` is a
    case-insensitive substring of the type, the queue or the payload's JSON;
    ``id_prefix`` starts the id; times are unix seconds, bounds included."""

    status: str | None = None
    type: str | None = None
    queue: str | None = None
    id_prefix: str | None = None
    text: str | None = None
    created_after: float | None = None
    created_before: float | None = None

    def matches(self, t: Task) -> bool:
        s = t.spec
        if self.status and t.status.value != self.status:
            return False
        if (self.type and s.type != self.type) or (self.queue and s.queue != self.queue):
            return False
        if self.id_prefix and not s.id.startswith(self.id_prefix):
            return False
        if self.created_after is not None and s.created_at < self.created_after:
            return False
        if self.created_before is not None and s.created_at > self.created_before:
            return False
        return not self.text or _contains(t, self.text.casefold())

    def past(self, chunk: list[Task]) -> bool:
        """True when every task of ``chunk`` (newest first, read from the
        index) is so far before ``created_after`` that no older one matches."""
        if self.created_after is None or not chunk:
            return False
        return all(t.spec.created_at < self.created_after - CLOCK_SKEW for t in chunk)


def _contains(t: Task, needle: str) -> bool:
    s = t.spec
    if needle in s.type.casefold() or needle in s.queue.casefold():
        return True
    return needle in orjson.dumps(s.payload).decode().casefold()
