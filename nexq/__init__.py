"""Nexq: a distributed background-task queue on trio and Pogocache.

What a user writes: an app with handlers (``Nexq``, ``@app.task``), the
handler's ``Context``, the ``TaskHandle`` an enqueue returns, the clients
that produce from sync code and asyncio (``Client``, ``AsyncClient``), the
signals a handler may raise (``Retry``, ``Defer``), middleware
(``Middleware``) and every error a user can catch. The engine's types live in ``nexq.lowlevel``.
"""

from .aio_client import AsyncClient
from .app import Context, Nexq, TaskFailed, TaskHandle
from .client import Client
from .errors import (
    CommandNotAllowed,
    Defer,
    InvalidStoreURL,
    NexqError,
    ResultNotSerializable,
    Retry,
    StoreAuthError,
    StoreError,
    StoreFull,
    StoreResponseError,
    StoreUnavailable,
    TaskNotFound,
    UnknownTaskType,
)
from .hooks import Middleware, Terminal
from .task import Attempt, Outcome, RetryPolicy, Status, Task
from .taskdef import TaskDef
from .webhook_url import WebhookRefused
from .webhook_url import verify as verify_webhook

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Attempt",
    "Client",
    "CommandNotAllowed",
    "Context",
    "Defer",
    "InvalidStoreURL",
    "Middleware",
    "Nexq",
    "NexqError",
    "Outcome",
    "ResultNotSerializable",
    "Retry",
    "RetryPolicy",
    "Status",
    "StoreAuthError",
    "StoreError",
    "StoreFull",
    "StoreResponseError",
    "StoreUnavailable",
    "Task",
    "TaskDef",
    "TaskFailed",
    "TaskHandle",
    "TaskNotFound",
    "Terminal",
    "UnknownTaskType",
    "WebhookRefused",
    "__version__",
    "verify_webhook",
]
