"""The engine's types, for tools and tests that work below the app API.

As ``trio.lowlevel`` does for trio: what most users never need, kept out of
``nexq``'s namespace. No stability promise beyond the release.
"""

from .codec import decode_spec, encode_spec
from .hooks import Hooks
from .keys import TERMINAL_STATES, Keys, State
from .queue import (
    Claimed,
    ClusterBroker,
    Enqueued,
    EnqueueRequest,
    Inspector,
    NodeBroker,
    NodeContext,
    Page,
    QueueBackend,
    make_spec,
)
from .runtime.runtime import Runtime, open_runtime
from .runtime.service import Service, run_service
from .store import Batch, Store, open_store, open_stores
from .task import TaskSpec

__all__ = [
    "TERMINAL_STATES",
    "Batch",
    "Claimed",
    "ClusterBroker",
    "EnqueueRequest",
    "Enqueued",
    "Hooks",
    "Inspector",
    "Keys",
    "NodeBroker",
    "NodeContext",
    "Page",
    "QueueBackend",
    "Runtime",
    "Service",
    "State",
    "Store",
    "TaskSpec",
    "decode_spec",
    "encode_spec",
    "make_spec",
    "open_runtime",
    "open_store",
    "open_stores",
    "run_service",
]
