"""What one API app keeps: the runtime and its shutdown signal.

Stored on the app (``app.extensions["nexq"]``), never in module globals, so
several apps (tests, several runtimes) live side by side in one process.
Handlers reach it through :func:`current_state` / :func:`current_runtime`.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import trio
from quart import Quart, current_app

from ..runtime.runtime import Runtime

EXTENSION = "nexq"


@attrs.define
class ApiState:
    """Per-app state: the runtime, where the dashboard lives, open streams."""

    runtime: Runtime
    static_dir: Path | None
    shutting_down: trio.Event = attrs.field(factory=trio.Event)
    # Cancel scopes of SSE streams currently waiting for their next event;
    # each is entered and left within one wait, never across a ``yield``.
    waits: set[trio.CancelScope] = attrs.field(factory=set)

    def begin_shutdown(self) -> None:
        """Tell every event stream to end now; new streams end at once."""
        self.shutting_down.set()
        for scope in list(self.waits):
            scope.cancel()


def api_state(app: Quart) -> ApiState:
    """The ApiState of an app made by :func:`nexq.api.create_app` (or of any
    app given one under ``app.extensions["nexq"]``)."""
    state: ApiState = app.extensions[EXTENSION]
    return state


def current_state() -> ApiState:
    """The ApiState of the app serving the current request (or app context)."""
    return api_state(current_app)


def current_runtime() -> Runtime:
    """The runtime of the app serving the current request (or app context)."""
    return current_state().runtime
