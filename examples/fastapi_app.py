"""FastAPI (asyncio): enqueue from an endpoint with nexq.AsyncClient.

    uvicorn examples.fastapi_app:api          # and a worker: nexq worker --app examples.tasks:app

One AsyncClient for the whole app, opened and closed with it (lifespan): it
pools pipelined connections for every request on the event loop. The store
and namespace are the tasks app's (NEXQ_STORE / NEXQ_NAMESPACE override).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from examples.tasks import app as tasks
from nexq import AsyncClient, StoreFull, StoreUnavailable


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    async with AsyncClient(app=tasks) as client:
        api.state.nexq = client
        yield


api = FastAPI(lifespan=lifespan)


class Signup(BaseModel):
    email: str


@api.post("/signup", status_code=202)
async def signup(body: Signup, request: Request) -> dict[str, str]:
    handle = await request.app.state.nexq.enqueue("send_email", {"to": body.email})
    return {"task_id": handle.id}


@api.get("/tasks/{task_id}")
async def task_status(task_id: str, request: Request) -> dict[str, Any]:
    task = await request.app.state.nexq.get(task_id)
    if task is None:
        raise HTTPException(404, f"no task {task_id}")
    return {"id": task.id, "status": task.status.value, "result": task.result}


@api.exception_handler(StoreUnavailable)
@api.exception_handler(StoreFull)
async def store_trouble(request: Request, exc: Exception) -> JSONResponse:
    # The queue cannot take work right now: tell the caller to retry later.
    return JSONResponse({"error": str(exc)}, status_code=503)
