"""What tracing (nexq.otel) costs: a lone ``nexq.Client.enqueue`` with and
without the ``Tracing`` middleware, and the worker's consumer hooks alone.

    .venv/bin/pip install -e '.[otel]'
    .venv/bin/python benchmarks/otel_overhead.py [--enqueues 5000] [--rounds 3]

Against a throw-away redis-server: per round, ``--enqueues`` sequential
enqueues from a plain loop through a Client of an app without middleware,
then one of an app with ``Tracing`` on an SDK tracer provider whose
SimpleSpanProcessor hands spans to an exporter that drops them (the SDK's
own cost, no I/O); wall and CPU (``time.process_time``, the exporter's
thread included) per enqueue, medians over the rounds. Then the consumer
side: ``before_process`` + ``after_process`` of ``Tracing`` for one attempt
whose task carries a traceparent, in a trio loop.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import trio
from common import local_redis, machine_line
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import nexq
from nexq.app import Context
from nexq.otel import Tracing
from nexq.queue import Claimed
from nexq.task import Outcome, TaskSpec


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def enqueues(url: str, app: nexq.Nexq, n: int, namespace: str) -> tuple[float, float]:
    """(wall µs, CPU µs) per enqueue over ``n`` sequential calls."""
    with nexq.Client(url, namespace=namespace, app=app) as client:
        for i in range(200):  # connect, read the types once, warm up
            client.enqueue("noop", {"i": i})
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            client.enqueue("noop", {"i": i})
        return ((time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6)


async def consumer_hooks(tracing: Tracing, n: int) -> float:
    """µs per attempt of the consumer span's hooks."""
    spec = TaskSpec(id="t1", type="noop", headers={
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
    ctx = Context(Claimed(spec, 1, "w", 0.0), None, None)  # type: ignore[arg-type]  # only .task is read
    start = time.perf_counter()
    for _ in range(n):
        await tracing.before_process(ctx)
        await tracing.after_process(ctx, Outcome.SUCCEEDED, None, None, 0.0)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--enqueues", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    tracing = Tracing(provider)
    plain, traced = nexq.Nexq(), nexq.Nexq(middleware=[tracing])
    rows: dict[str, list[tuple[float, float]]] = {"without tracing": [], "with Tracing": []}
    with local_redis() as url:
        for r in range(args.rounds):
            rows["without tracing"].append(enqueues(url, plain, args.enqueues, f"plain{r}"))
            rows["with Tracing"].append(enqueues(url, traced, args.enqueues, f"traced{r}"))
    print(machine_line())
    print(f"nexq.Client.enqueue, {args.enqueues} sequential, median of {args.rounds} rounds (redis-server):")
    for name, values in rows.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"  {name:16} {wall:6.1f} µs wall  {cpu:6.1f} µs CPU per enqueue")
    hooks = statistics.median(trio.run(consumer_hooks, tracing, 20_000) for _ in range(args.rounds))
    print(f"consumer span (before_process + after_process): {hooks:.1f} µs per attempt")
    provider.shutdown()


if __name__ == "__main__":
    main()
