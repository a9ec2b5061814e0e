"""Cross-process wake-up: a UDP doorbell per worker process.

Pogocache has no blocking pops or pub/sub, so a worker in another process
would only see new work at its next poll. Instead each worker process
listens on a UDP port and advertises it in the worker registry; whoever
pushes work into a lane (a producer, or a scheduler promoting due tasks)
sends every live worker a datagram, and the worker claims at once. A push
of one attempt names it in the datagram (``!`` + :meth:`Pushed.encode
<nexq.queue.lanes.Pushed.encode>`): an idle worker then leases that attempt
straight away instead of reading the lanes first (two round trips fewer
from the push to the handler). The doorbell only says "look now" (and
where): a lost datagram costs one poll interval, a forged one an extra
claim round or a failed lease, never correctness.

A second datagram, ``CHECK``, says "check your running attempts now": a
process that cancels a running attempt rings it at the worker its lease
names, which then runs its heartbeat check at once (it reads the decision
from the store; the datagram itself decides nothing).

The advertised address is the local address this host uses to reach the
store, so any machine that reaches the store can usually reach it too.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import trio

from ..queue.lanes import Pushed

log = logging.getLogger("nexq.doorbell")
REFRESH = 1.0  # seconds between reads of the registry's doorbell addresses
RING = b"!"  # work was pushed: claim now
CHECK = b"c"  # an attempt was decided elsewhere (a cancel): check the running attempts now
MAX_DATAGRAM = 1024  # a ring naming an attempt longer than this names none


def advertise_ip(host: str | None, port: int = 9) -> str:
    """The local IP used to reach ``host`` (no packet is sent)."""
    if not host or host in ("localhost",) or host.startswith("127."):
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, port))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


class Doorbell:
    """Listens for rings: calls ``on_check`` for a CHECK datagram (when
    given), ``on_ring`` for any other, with the attempt it names (or None)."""

    def __init__(self, on_ring: Callable[[Pushed | None], None], host: str = "127.0.0.1",
                 on_check: Callable[[], None] | None = None) -> None:
        self.on_ring, self.host, self.on_check = on_ring, host, on_check
        self.address: tuple[str, int] | None = None

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.bind((self.host, 0))
            self.address = (self.host, sock.getsockname()[1])
            task_status.started(self.address)
            while True:
                data = await sock.recv(MAX_DATAGRAM)
                if data == CHECK and self.on_check is not None:
                    self.on_check()
                else:
                    self.on_ring(Pushed.decode(data[1:]) if data[:1] == RING and len(data) > 1 else None)


class Ringer:
    """Rings the doorbells of the workers the registry lists (best effort)."""

    def __init__(self) -> None:
        self.addresses: list[tuple[str, int]] = []
        self.by_worker: dict[str, tuple[str, int]] = {}
        self.refreshed = float("-inf")
        self._sock: socket.socket | None = None

    @property
    def stale(self) -> bool:
        return time.monotonic() - self.refreshed > REFRESH

    def update(self, workers: Iterable[dict[str, Any]]) -> None:
        self.by_worker = {str(w.get("id")): (str(w["wake"][0]), int(w["wake"][1]))
                          for w in workers if w.get("wake")}
        self.addresses = list(self.by_worker.values())
        self.refreshed = time.monotonic()

    def ring(self, pushed: Pushed | None = None) -> None:
        """Ring every worker: work was pushed (``pushed``: the one attempt)."""
        data = RING
        if pushed is not None:
            data = RING + pushed.encode()
            if len(data) > MAX_DATAGRAM:
                data = RING
        for addr in self.addresses:
            self._send(data, addr)

    def check(self, worker_id: str) -> bool:
        """Ring ``worker_id`` with CHECK; False if its doorbell is not known."""
        addr = self.by_worker.get(worker_id)
        if addr is not None:
            self._send(CHECK, addr)
        return addr is not None

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
        try:
            self._sock.sendto(data, addr)
        except OSError:
            pass  # full buffer or unreachable: the worker's poll (or heartbeat) covers it
