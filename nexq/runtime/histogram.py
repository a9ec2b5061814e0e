"""A cumulative histogram of handler durations, kept per process.

The worker observes each attempt's duration; ``/metrics`` exposes it as
``nexq_handler_duration_seconds``.
"""

from __future__ import annotations

import bisect

import attrs

DEFAULT_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@attrs.define
class Histogram:
    """Counts of observations per upper bound (the last bucket is +Inf).

    If the runtime has a ``handler_durations`` attribute of this shape,
    ``/metrics`` exposes it as ``nexq_handler_duration_seconds``.
    """

    bounds: tuple[float, ...] = DEFAULT_BOUNDS
    counts: list[int] = attrs.field(factory=list)  # per bucket, the last is +Inf
    total: float = 0.0

    def __attrs_post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)


