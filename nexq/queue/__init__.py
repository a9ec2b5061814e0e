"""Queue protocols over the Store's single-key primitives (no RESP here).

:class:`QueueBackend` is what the layers above use; :class:`NodeBroker`
implements it over one store node and :class:`ClusterBroker` over several.
"""

from .backend import QueueBackend
from .cluster import ClusterBroker
from .context import NodeContext, WebhookPolicy
from .inspect import Inspector, Page
from .lane_reader import LaneReader
from .node import NodeBroker
from .requests import Claimed, Enqueued, EnqueueRequest, make_spec

__all__ = [
    "Claimed",
    "ClusterBroker",
    "EnqueueRequest",
    "Enqueued",
    "Inspector",
    "LaneReader",
    "NodeBroker",
    "NodeContext",
    "Page",
    "QueueBackend",
    "WebhookPolicy",
    "make_spec",
]
