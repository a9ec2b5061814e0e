"""Nexq: a distributed background-task queue on trio and Pogocache."""

from .errors import NexqError, StoreError, StoreUnavailable
from .queue import Broker, EnqueueRequest, Inspector
from .store import open_store
from .task import Outcome, RetryPolicy, Status, Task, TaskSpec

__version__ = "0.1.0"

__all__ = [
    "Broker",
    "EnqueueRequest",
    "Inspector",
    "NexqError",
    "Outcome",
    "RetryPolicy",
    "Status",
    "StoreError",
    "StoreUnavailable",
    "Task",
    "TaskSpec",
    "__version__",
    "open_store",
]
