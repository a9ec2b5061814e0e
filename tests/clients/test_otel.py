"""nexq.otel: one trace from a FastAPI request (uvicorn, OpenTelemetry's
FastAPI instrumentation) through nexq.AsyncClient's enqueue to the handler
a real trio worker runs on redis-server; the SDK's in-memory exporter
holds every span. Also: the headers that carry the context (validation,
encoding) and importing nexq without OpenTelemetry."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

import nexq
from nexq.codec import decode_spec, encode_spec, loads
from nexq.config import Settings
from nexq.otel import Tracing
from nexq.runtime.runtime import Runtime
from nexq.store import open_stores
from nexq.task import TaskSpec
from tests.clients.conftest import trio_worker
from tests.polling import poll
from tests.servers import free_port

QUEUE = "traced"


def recording() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer provider keeping every finished span in memory, and its exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
def traced(resp_url: str, ns: str) -> Iterator[tuple[InMemorySpanExporter, str, nexq.Client]]:
    """A FastAPI app under uvicorn (in a thread) enqueuing through an
    AsyncClient of a traced Nexq app, that app's worker (in a thread), and
    the exporter every span of this process goes to; yields (exporter,
    the web app's base URL, a client to read tasks back)."""
    provider, exporter = recording()
    inner = provider.get_tracer("handler")
    app = nexq.Nexq(resp_url, namespace=ns, middleware=[Tracing(provider)])

    @app.task("greet", queue=QUEUE)
    def greet(payload: dict[str, Any]) -> str:  # a plain function: runs in a worker thread
        with inner.start_as_current_span("inside greet"):
            return f"hello {payload['name']}"

    @app.task("explode", queue=QUEUE, max_retries=0)
    async def explode(payload: Any) -> None:  # async: runs in the worker's trio task
        with inner.start_as_current_span("inside explode"):
            raise ValueError("boom")

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        async with nexq.AsyncClient(app=app) as client:
            api.state.nexq = client
            yield

    api = FastAPI(lifespan=lifespan)

    @api.post("/enqueue/{type}")
    async def enqueue(type: str, request: Request) -> dict[str, str]:
        handle = await request.app.state.nexq.enqueue(type, await request.json())
        return {"task_id": handle.id}

    FastAPIInstrumentor.instrument_app(api, tracer_provider=provider)
    with trio_worker(app, resp_url, ns, queues=[QUEUE]), serve(api) as base, \
            nexq.Client(resp_url, namespace=ns) as client:
        yield exporter, base, client


@contextmanager
def serve(api: FastAPI) -> Iterator[str]:
    """``api`` served by uvicorn in a thread until the block ends; its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        poll(lambda: server.started)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def finished(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    """The one span called ``name``, once it ended (waits for it)."""
    def one() -> ReadableSpan | None:
        spans = [s for s in exporter.get_finished_spans() if s.name == name]
        assert len(spans) <= 1, spans
        return spans[0] if spans else None
    return poll(one)  # type: ignore[no-any-return]


def traceparent(span: ReadableSpan) -> str:
    """``span``'s W3C traceparent header."""
    c = span.context
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"


def chain(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> list[str]:
    """The names of ``span``'s ancestors, nearest first (within ``spans``, by span id)."""
    names = []
    while span.parent is not None and span.parent.span_id in spans:
        span = spans[span.parent.span_id]
        names.append(span.name)
    return names


def test_one_trace_from_a_fastapi_request_through_the_handler(
        traced: tuple[InMemorySpanExporter, str, nexq.Client]) -> None:
    exporter, base, client = traced
    r = httpx.post(f"{base}/enqueue/greet", json={"name": "ada"}, timeout=10)
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    assert client.handle(task_id).result(timeout=30) == "hello ada"

    inside = finished(exporter, "inside greet")
    consumer = finished(exporter, "nexq.process greet")
    producer = finished(exporter, "nexq.enqueue greet")
    server = poll(lambda: [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER])
    assert len(server) == 1 and server[0].name == "POST /enqueue/{type}"
    spans = {s.context.span_id: s for s in exporter.get_finished_spans()}
    assert {s.context.trace_id for s in spans.values()} == {server[0].context.trace_id}  # one trace
    assert chain(inside, spans) == ["nexq.process greet", "nexq.enqueue greet", "POST /enqueue/{type}"]
    assert producer.kind is SpanKind.PRODUCER and consumer.kind is SpanKind.CONSUMER
    assert dict(producer.attributes or {}) == {
        "messaging.system": "nexq", "messaging.destination.name": QUEUE, "messaging.message.id": task_id,
        "messaging.operation.type": "send", "nexq.task.type": "greet", "nexq.task.id": task_id}
    assert dict(consumer.attributes or {}) == {
        "messaging.system": "nexq", "messaging.destination.name": QUEUE, "messaging.message.id": task_id,
        "messaging.operation.type": "process", "nexq.task.type": "greet", "nexq.task.id": task_id,
        "nexq.task.attempt": 1, "nexq.task.outcome": "succeeded"}
    assert consumer.status.status_code is StatusCode.UNSET
    # The context travelled in the stored task: W3C traceparent of the producer span.
    task = client.get(task_id)
    assert task is not None
    assert dict(task.spec.headers) == {
        "traceparent": traceparent(producer)}


def test_a_failing_handler_records_outcome_failed_and_its_exception(
        traced: tuple[InMemorySpanExporter, str, nexq.Client]) -> None:
    exporter, base, client = traced
    r = httpx.post(f"{base}/enqueue/explode", json={}, timeout=10)
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    with pytest.raises(nexq.TaskFailed, match="boom"):
        client.handle(task_id).result(timeout=30)

    consumer = finished(exporter, "nexq.process explode")
    producer = finished(exporter, "nexq.enqueue explode")
    inside = finished(exporter, "inside explode")
    assert consumer.context.trace_id == producer.context.trace_id == inside.context.trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert inside.parent is not None and inside.parent.span_id == consumer.context.span_id
    attributes = dict(consumer.attributes or {})
    assert (attributes["nexq.task.id"], attributes["nexq.task.attempt"]) == (task_id, 1)
    assert (attributes["nexq.task.outcome"], attributes["error.type"]) == ("failed", "ValueError")
    assert consumer.status.status_code is StatusCode.ERROR and consumer.status.description == "boom"
    [event] = consumer.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"] == "ValueError"
    assert dict(event.attributes or {})["exception.message"] == "boom"


async def test_a_task_without_a_current_span_joins_the_trace_its_headers_name(resp_url: str, ns: str) -> None:
    """A caller with no tracing of its own (REST, another language) passes a
    traceparent: the producer span is in that trace, under that span."""
    provider, exporter = recording()
    app = nexq.Nexq(resp_url, namespace=ns, middleware=[Tracing(provider)])
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with app.connect():
        handle = await app.enqueue("greet", None, headers={"traceparent": caller, "tenant": "acme"})
        task = await handle.info()
    [producer] = exporter.get_finished_spans()
    assert producer.context.trace_id == 0x0af7651916cd43dd8448eb211c80319c
    assert producer.parent is not None and producer.parent.span_id == 0xb7ad6b7169203331
    assert dict(task.spec.headers) == {
        "tenant": "acme", "traceparent": traceparent(producer)}


async def test_without_a_tracer_provider_tasks_carry_nothing(resp_url: str, ns: str) -> None:
    """Tracing installed but OpenTelemetry not set up (the API's no-op
    provider): nothing is added to the stored task."""
    app = nexq.Nexq(resp_url, namespace=ns, middleware=[Tracing(NoOpTracerProvider())])
    async with app.connect():
        handle = await app.enqueue("greet", None)
        raw = await app.broker.nodes[0].store.get(app.broker.nodes[0].keys.spec(handle.id))
    assert raw is not None and "h" not in loads(raw)


async def test_producer_spans_only_for_tasks_written() -> None:
    """A batch over three store nodes is checked on every node before any
    is written (a dry run of before_enqueue): one span per task still, and
    none for an enqueue that found its unique_key held."""
    provider, exporter = recording()
    app = nexq.Nexq(middleware=[Tracing(provider)])
    async with open_stores(["memory://"] * 3) as stores:
        app.bind(Runtime.build(Settings(namespace="c"), stores, ["n1:1", "n2:1", "n3:1"], app=app))
        handles = await app.enqueue_many([("greet", i, {"queue": f"q{i}"}) for i in range(12)])
        assert len({app.broker.node_of(f"q{i}") for i in range(12)}) == 3
        first = await app.enqueue("greet", None, unique_key="once")
        again = await app.enqueue("greet", None, unique_key="once")
    assert (again.id, again.created) == (first.id, False)
    ids = sorted(str(dict(s.attributes or {})["nexq.task.id"]) for s in exporter.get_finished_spans())
    assert ids == sorted([h.id for h in handles] + [first.id])


# -- the headers that carry it -------------------------------------------------------


@pytest.mark.parametrize(("headers", "says"), [
    ({"traceparent": 1}, "headers: the value of 'traceparent' must be text"),
    ({"": "x"}, "headers: each name must be text of 1-128 characters"),
    ({"n" * 129: "x"}, "headers: each name must be text of 1-128 characters"),
    (["traceparent"], "headers must be an object of at most 32 names"),
    ({f"h{i}": "x" for i in range(33)}, "headers must be an object of at most 32 names"),
    ({"baggage": "x" * 8186}, "headers must hold at most 8192 characters of names and values, not 8193"),
])
def test_bad_headers_are_refused_naming_the_field(resp_url: str, ns: str, headers: Any, says: str) -> None:
    with nexq.Client(resp_url, namespace=ns) as client:
        with pytest.raises(ValueError, match=says.replace("(", r"\(")):
            client.enqueue("greet", None, headers=headers)
        assert client.run(lambda node: node.inspector().queues()) == []  # nothing written


def test_headers_are_stored_only_when_set() -> None:
    plain = TaskSpec(id="t1", type="greet")
    assert "h" not in loads(encode_spec(plain))  # nothing grows for tasks without headers
    assert decode_spec(encode_spec(plain)).headers == {}
    carried = TaskSpec(id="t2", type="greet", headers={"traceparent": "00-ab-cd-01"})
    assert decode_spec(encode_spec(carried)) == carried
    assert hash(carried) == hash(TaskSpec(id="t2", type="greet"))  # specs stay hashable


@pytest.mark.slow
def test_nexq_imports_without_opentelemetry() -> None:
    """Only nexq.otel needs it; it says how to install it."""
    code = ("import sys\n"
            "import nexq, nexq.cli, nexq.runtime.worker, nexq.api.app\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
            "sys.modules['opentelemetry'] = None  # as if it were not installed\n"
            "try:\n"
            "    import nexq.otel\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.splitlines()[0] == "[]"
    assert out.stdout.splitlines()[1].startswith("nexq.otel needs OpenTelemetry: pip install 'nexq[otel]'")
