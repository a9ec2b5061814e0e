"""Nexq: a distributed background-task queue on trio and Pogocache."""

from .app import Context, Nexq, TaskFailed, TaskHandle
from .errors import NexqError, Retry, StoreError, StoreUnavailable
from .queue import Broker, EnqueueRequest, Inspector
from .store import open_store
from .task import Outcome, RetryPolicy, Status, Task, TaskSpec

__version__ = "0.1.0"

__all__ = [
    "Broker",
    "Context",
    "Nexq",
    "Retry",
    "TaskFailed",
    "TaskHandle",
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
