"""Tracing with OpenTelemetry: one trace from a FastAPI request to the handler.

    pip install 'nexq[otel]' opentelemetry-instrumentation-fastapi
    nexq worker --app examples.otel_app:app      # prints the handler's spans
    uvicorn examples.otel_app:api                 # prints the request's and the enqueue's spans
    curl -X POST localhost:8000/signup -H 'content-type: application/json' -d '{"email": "a@example.com"}'

Both processes import this module: it sets up the tracer provider (here
printing each span as one JSON line; in production a BatchSpanProcessor with
an OTLP exporter), and the Nexq app carries the ``Tracing`` middleware, so
the web process's enqueue and the worker's handler are spans of one trace.
The store comes from NEXQ_STORE when set, else the URL below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from pydantic import BaseModel

from nexq import AsyncClient, Nexq
from nexq.otel import Tracing


def one_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(formatter=one_line)))
trace.set_tracer_provider(provider)

app = Nexq("pogocache://127.0.0.1:9401", namespace="examples", middleware=[Tracing()])
tracer = trace.get_tracer("signup")


@app.task("send_welcome", queue="emails")
def send_welcome(payload: dict[str, Any]) -> dict[str, Any]:
    with tracer.start_as_current_span("render welcome email"):  # a child of the handler's span
        return {"sent_to": payload["to"]}


@asynccontextmanager
async def lifespan(api: FastAPI) -> AsyncIterator[None]:
    async with AsyncClient(app=app) as client:  # enqueues through the app's middleware
        api.state.nexq = client
        yield


api = FastAPI(lifespan=lifespan)
FastAPIInstrumentor.instrument_app(api)


class Signup(BaseModel):
    email: str


@api.post("/signup", status_code=202)
async def signup(body: Signup, request: Request) -> dict[str, str]:
    handle = await request.app.state.nexq.enqueue("send_welcome", {"to": body.email})
    return {"task_id": handle.id}
