"""Queue protocols over the Store's single-key primitives (no RESP here)."""

from .engine import Broker, Claimed, Enqueued, EnqueueRequest
from .inspect import Inspector, Page
from .lanes import LaneReader

__all__ = ["Broker", "Claimed", "EnqueueRequest", "Enqueued", "Inspector", "LaneReader", "Page"]
