"""The one thread that keeps a process's ``nexq.Client`` objects warm.

An idle client's numbers reserved ahead expire after a few seconds
(:mod:`nexq.queue.reservations`, "Kept warm"); every ``WARM_TICK`` s this
thread asks each open client to renew what is due (``Client._warm_tick``:
no store call unless something is). One daemon thread per process, however
many clients: a client made per request, and never closed, costs an entry
in a weak set, not a thread. Clients are held weakly (one dropped without
``close()`` is collected and forgotten); the thread ends once none is
left, and the next client to enqueue starts it again (so does a forked
child, which inherits no threads).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Protocol

from .queue import reservations

log = logging.getLogger("nexq.client")


class Warm(Protocol):
    def _warm_tick(self) -> None:
        """Renew what is due; never raises."""


class Keeper:
    """The keeper thread and the clients it looks after (see module doc)."""

    def __init__(self) -> None:
        self.clients: weakref.WeakSet[Warm] = weakref.WeakSet()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, client: Warm) -> None:
        """Look after ``client`` (starting the thread if none runs)."""
        with self.lock:
            self.clients.add(client)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="nexq-client-warm", daemon=True)
                self.thread.start()

    def discard(self, client: Warm) -> None:
        with self.lock:
            self.clients.discard(client)

    def __contains__(self, client: object) -> bool:
        return client in self.clients

    def _run(self) -> None:
        while True:
            time.sleep(reservations.WARM_TICK)
            with self.lock:
                clients = list(self.clients)
                if not clients:
                    self.thread = None
                    return
            for client in clients:
                client._warm_tick()
            del clients, client  # hold no client past its tick (weakly held)

    def forked(self) -> None:
        """In a forked child: no thread runs; the lock may have been held."""
        self.lock, self.thread = threading.Lock(), None


KEEPER = Keeper()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=KEEPER.forked)
