"""What ``nexq enqueue`` / ``nexq tasks`` / ``nexq top`` talk to: the store, or a running
server's REST API (``--api``, or the ``nexq run`` found holding
``--data-dir``). Both answer with the API's task JSON and fail with the same
CliErrors, so the commands print the same whichever is used.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from ..app import Nexq
from ..config import Settings
from ..runtime.runtime import Runtime, open_runtime
from ..task import Status
from .discovery import find_server
from .errors import (
    FAILURE,
    NOT_FOUND,
    UNREACHABLE,
    USAGE,
    CliError,
    NotFound,
    Unreachable,
    UsageError,
)

RETRYABLE = (Status.DEAD.value, Status.CANCELLED.value, Status.SUCCEEDED.value)  # ended: run again


class Client(Protocol):
    async def enqueue(self, type: str, payload: Any, options: dict[str, Any]) -> dict[str, Any]:
        """The new task (or the live one holding its unique key); ``created`` says which."""
        ...

    async def list(self, filters: dict[str, Any]) -> list[dict[str, Any]]: ...

    async def get(self, task_id: str) -> dict[str, Any]:
        """The task; NotFound if there is none."""
        ...

    async def cancel(self, task_id: str) -> dict[str, Any]:
        """The cancelled task; NotFound, or CliError naming its state."""
        ...

    async def retry(self, task_id: str) -> dict[str, Any]:
        """The task, pending again; NotFound, or CliError naming its state."""
        ...

    async def stats(self, minutes: int) -> dict[str, Any]:
        """What ``GET /api/stats`` answers: counts, queues, ``minutes`` of throughput."""
        ...

    async def workers(self) -> builtins.list[dict[str, Any]]:
        """What ``GET /api/workers`` lists: registered workers, stale ones flagged."""
        ...


def not_found(task_id: str) -> NotFound:
    return NotFound(f"task {task_id!r} not found (ids are shown by `nexq tasks list`)")


def wrong_state(action: str, task_id: str, status: str) -> CliError:
    if action == "cancel":
        return CliError(f"cannot cancel task {task_id!r}: it already ended {status}")
    return CliError(f"cannot retry task {task_id!r}: it is {status}; "
                    "only ended tasks (dead, cancelled or succeeded) can run again")


class StoreClient:
    """Straight to the store, through the app (its handler defaults apply)."""

    def __init__(self, app: Nexq, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime

    async def enqueue(self, type: str, payload: Any, options: dict[str, Any]) -> dict[str, Any]:
        try:
            handle = await self.app.enqueue(type, payload, **options)
        except ValueError as exc:  # checks that need the store: parents exist, ids free
            raise UsageError(str(exc)) from None
        return {**await self.get(handle.id), "created": handle.created}

    async def list(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        page = await self.app.broker.inspector().list(**filters)
        return [t.to_json() for t in page.tasks]

    async def get(self, task_id: str) -> dict[str, Any]:
        task = await self.app.broker.inspector().get(task_id)
        if task is None:
            raise not_found(task_id)
        return task.to_json()

    async def cancel(self, task_id: str) -> dict[str, Any]:
        task = await self.get(task_id)
        if Status(task["status"]).terminal or not await self.app.broker.cancel(task_id):
            raise wrong_state("cancel", task_id, (await self.get(task_id))["status"])
        return await self.get(task_id)

    async def retry(self, task_id: str) -> dict[str, Any]:
        task = await self.get(task_id)
        if task["status"] not in RETRYABLE or not await self.app.broker.inspector().requeue(task_id):
            raise wrong_state("retry", task_id, (await self.get(task_id))["status"])
        return await self.get(task_id)

    async def stats(self, minutes: int) -> dict[str, Any]:
        from ..api.stats import snapshot

        return await snapshot(self.runtime, minutes)

    async def workers(self) -> builtins.list[dict[str, Any]]:
        from ..api.stats import workers

        return await workers(self.runtime)


class ApiClient:
    """Through a running server's REST API."""

    def __init__(self, http: httpx.AsyncClient, url: str) -> None:
        self.http, self.url = http, url

    async def _call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        try:
            r = await self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise Unreachable(f"the nexq API at {self.url} is unreachable: {exc or type(exc).__name__}") from None
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code < 400:
            return r.status_code, body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message") or f"HTTP {r.status_code}"
        if r.status_code in (401, 403):
            raise Unreachable(f"the nexq API at {self.url} refused the request ({message}): "
                              "pass --api-token or set NEXQ_API_TOKEN")
        code = {400: USAGE, 404: NOT_FOUND, 413: USAGE, 503: UNREACHABLE}.get(r.status_code, FAILURE)
        raise CliError(message, code)

    async def enqueue(self, type: str, payload: Any, options: dict[str, Any]) -> dict[str, Any]:
        body = {"type": type, "payload": payload, **options}
        if "delay" in body:
            body["schedule_in"] = body.pop("delay")
        status, task = await self._call("POST", "/api/tasks", json=body)
        return {**task, "created": status == 201}

    async def list(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        _, page = await self._call("GET", "/api/tasks", params=params)
        return list(page["tasks"])

    async def _task(self, method: str, task_id: str, action: str = "") -> dict[str, Any]:
        """``/api/tasks/{id}[/action]``; a 404 is NotFound naming the id."""
        try:
            _, task = await self._call(method, f"/api/tasks/{quote(task_id, safe='')}{action and '/' + action}")
        except CliError as exc:
            if exc.code == NOT_FOUND:
                raise not_found(task_id) from None
            raise
        return dict(task)

    async def get(self, task_id: str) -> dict[str, Any]:
        return await self._task("GET", task_id)

    async def _act(self, action: str, task_id: str) -> dict[str, Any]:
        try:
            return await self._task("POST", task_id, action)
        except CliError as exc:
            if exc.code == FAILURE:  # 409, wrong state: say it as the store path does
                raise wrong_state(action, task_id, (await self.get(task_id))["status"]) from None
            raise

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self._act("cancel", task_id)

    async def retry(self, task_id: str) -> dict[str, Any]:
        return await self._act("retry", task_id)

    async def stats(self, minutes: int) -> dict[str, Any]:
        _, stats = await self._call("GET", "/api/stats", params={"minutes": minutes})
        return dict(stats)

    async def workers(self) -> builtins.list[dict[str, Any]]:
        _, body = await self._call("GET", "/api/workers")
        return builtins.list(body["workers"])


def _existing_data_dir(settings: Settings) -> str:
    path = os.path.abspath(settings.data_dir)
    if not os.path.isdir(path):
        raise UsageError(f"--data-dir {settings.data_dir}: no such directory (`nexq run` creates it; "
                         "or pass --store URL / --api URL)")
    return path


@asynccontextmanager
async def open_client(settings: Settings, app: Nexq) -> AsyncIterator[Client]:
    """The API at ``settings.api``; else, with no store given, the ``nexq
    run`` holding the data directory; else the store itself. Never creates a
    data directory."""
    url = settings.api
    if settings.origins.get("api") == "--api" and settings.origins.get("store") == "--store":
        raise UsageError("give --api URL or --store URL, not both")
    if url is None and settings.store is None:
        data_dir = _existing_data_dir(settings)
        try:
            url = find_server(data_dir)
        except LookupError:
            raise CliError(f"--data-dir {settings.data_dir} is in use by a nexq process that serves no "
                           "API here (yet); pass --api URL, or --store URL") from None
    if url is not None:
        headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
        async with httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers,
                                     timeout=settings.store_timeout + 5) as http:
            yield ApiClient(http, url)
        return
    async with open_runtime(settings, app) as rt:
        app.bind(rt)
        try:
            yield StoreClient(app, rt)
        finally:
            app.bind(None)
