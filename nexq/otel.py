"""OpenTelemetry tracing for Nexq (``pip install 'nexq[otel]'``).

    import nexq
    from nexq.otel import Tracing

    app = nexq.Nexq("pogocache://127.0.0.1:9401", middleware=[Tracing()])

With the app's middleware installed, every enqueue (``app.enqueue``,
``nexq.Client(app=app)``, ``nexq.AsyncClient(app=app)``, ``ctx.enqueue``)
starts a PRODUCER span ``nexq.enqueue <type>`` per task, a child of the
caller's current span (a web request's, say), and stores its W3C trace
context (``traceparent``, and ``tracestate`` / ``baggage`` when set) in the
task's ``headers``; the span ends when the task is written (an enqueue that
fails, or finds its ``unique_key`` held, exports none: the caller's span
has the error). The worker continues that trace: a CONSUMER span
``nexq.process <type>`` around the handler, current while it runs (spans the
handler starts are its children), with the task's type, id, attempt and
outcome as attributes; a failed attempt records its exception and an error
status. Spans go to the tracer provider given, else the global one: set it
up (an exporter) in the producing process and in the worker's app module.

A task enqueued with ``headers={"traceparent": ...}`` and no current span
(REST callers, other languages) gets its producer span in that trace.

Built on the public middleware API (:class:`nexq.Middleware`:
``before_enqueue`` returning the specs with headers, ``after_enqueue``,
``before_process``, ``after_process``): nothing here is known to the queue
or the worker. A handler run with ``executor="process"`` is inside the
consumer span, but its own process does not get the context.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextvars import Token
from typing import TYPE_CHECKING, Any

import attrs

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind, StatusCode
except ImportError as exc:  # the extra is not installed
    raise ImportError("nexq.otel needs OpenTelemetry: pip install 'nexq[otel]' "
                      f"(opentelemetry-api and opentelemetry-sdk); {exc}") from None

from . import __version__
from .hooks import FAILED_OUTCOMES, Middleware
from .task import Outcome, TaskSpec

if TYPE_CHECKING:
    from .queue.node import NodeBroker

SYSTEM = "nexq"
# The outcome attribute of an attempt that ended without one of its own: it
# was cancelled, its lease was lost, or the worker shut down under it.
INTERRUPTED = "interrupted"
PENDING_FOR = 60.0  # seconds a producer span waits for its task to be written
MAX_PENDING = 100_000  # producer spans waiting at most


class Tracing(Middleware):
    """Producer and consumer spans, the trace context carried in the task's
    ``headers`` (see the module doc). One instance per app."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        """``tracer_provider``: where spans go (default: the global one, as
        set by ``trace.set_tracer_provider``, looked up when a span starts)."""
        self.tracer = trace.get_tracer("nexq", __version__, tracer_provider=tracer_provider)
        # Attempts running in this process: their span and the token that
        # made it current, until after_process ends them.
        self._running: dict[tuple[str, int], tuple[trace.Span, Token[Context]]] = {}
        # Producer spans of tasks being written, oldest first (see _hold);
        # a Client's threads share them.
        self._sending: OrderedDict[str, tuple[float, trace.Span]] = OrderedDict()
        self._lock = threading.Lock()

    def before_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> list[TaskSpec] | None:
        """Start one producer span per task (one per task, so each of a
        batch keeps its own context) and put its context into the
        replacement spec's headers; :meth:`after_enqueue` ends it once the
        task is written. None (nothing to replace) when no tracer records
        or propagates."""
        current = trace.get_current_span().get_span_context().is_valid
        out, changed, now = [], False, time.monotonic()
        for spec in specs:
            # A caller's own trace context (given with the task) when no span is current here.
            parent = propagate.extract(spec.headers) if spec.headers and not current else None
            span = self.tracer.start_span(f"nexq.enqueue {spec.type}", context=parent, kind=SpanKind.PRODUCER,
                                          attributes={**_attributes(spec), "messaging.operation.type": "send"})
            carrier = dict(spec.headers)
            propagate.inject(carrier, context=trace.set_span_in_context(span, parent))
            if carrier != spec.headers:  # else no tracer provider is set up: nothing to carry
                spec, changed = attrs.evolve(spec, headers=carrier), True
                self._hold(spec.id, span, now)
            out.append(spec)
        return out if changed else None

    async def after_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        """The tasks were written: end their producer spans."""
        with self._lock:
            spans = [self._sending.pop(spec.id, None) for spec in specs]
        for entry in spans:
            if entry is not None:
                entry[1].end()

    def _hold(self, task_id: str, span: trace.Span, now: float) -> None:
        """Keep ``span`` open until its task is written. Spans of tasks never
        written are dropped unended (never exported) after ``PENDING_FOR``
        s: a dry run (a cluster checks every node before writing any), a
        failed enqueue, a unique_key already held."""
        with self._lock:
            pending = self._sending
            pending.pop(task_id, None)
            pending[task_id] = (now, span)
            while len(pending) > MAX_PENDING or now - next(iter(pending.values()))[0] > PENDING_FOR:
                pending.popitem(last=False)

    async def before_process(self, ctx: Any) -> None:
        """Start the attempt's consumer span in the trace its task carries and
        make it current for the handler (which runs in this task, or in a
        thread given a copy of its context)."""
        spec: TaskSpec = ctx.task.spec
        parent = propagate.extract(spec.headers) if spec.headers else None
        span = self.tracer.start_span(
            f"nexq.process {spec.type}", context=parent, kind=SpanKind.CONSUMER,
            attributes={**_attributes(spec), "messaging.operation.type": "process",
                        "nexq.task.attempt": ctx.attempt})
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._running[(spec.id, ctx.attempt)] = (span, token)

    async def after_process(self, ctx: Any, outcome: Outcome | None, result: Any,
                            error: BaseException | None, duration: float) -> None:
        """End the consumer span with the outcome; a failure records its
        exception and sets the span's status to error."""
        entry = self._running.pop((ctx.task.spec.id, ctx.attempt), None)
        if entry is None:
            return
        span, token = entry
        span.set_attribute("nexq.task.outcome", outcome.value if outcome is not None else INTERRUPTED)
        if outcome is not None and outcome in FAILED_OUTCOMES:
            if error is not None:
                span.record_exception(error)
                span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(StatusCode.ERROR, str(error) if error is not None else outcome.value)
        span.end()
        otel_context.detach(token)


def _attributes(spec: TaskSpec) -> Mapping[str, str]:
    return {"messaging.system": SYSTEM, "messaging.destination.name": spec.queue,
            "messaging.message.id": spec.id, "nexq.task.type": spec.type, "nexq.task.id": spec.id}
