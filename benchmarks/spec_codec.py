"""The task spec on the hot paths: today's attrs + orjson beside msgspec
(issue 17, point 2). A study: nothing in nexq/ uses msgspec.

    .venv/bin/pip install msgspec            # benchmark only, not a dependency of nexq
    .venv/bin/python benchmarks/spec_codec.py [--repeat 7] [--enqueues 20000] [--out-dir DIR]

Per task, for three specs (a small payload; a ~1 KB payload; a small payload
with delay, priority, unique_key, expires_in, max_retries, timeout and a
W3C traceparent header), the
median (and the least) of ``--repeat`` timeit repeats of:

- build: options -> validated spec, with its ``seq`` filled in, as the
  producer does it (``build_request`` -> ``make_spec`` -> ``attrs.evolve``);
- encode: spec -> bytes stored under ``spec:{id}``;
- decode: bytes -> spec, as a worker's claim does;
- round trip: build + encode + decode.

Variants: (a) today's code, exactly the functions the producer and the
worker call; (b) a ``msgspec.Struct`` mirror of TaskSpec (same short keys,
so it reads today's stored specs and today's ``decode_spec`` reads its
output) with the request validated by ``msgspec.convert`` into a Struct
whose fields carry make_spec's bounds and patterns, then msgspec.json;
(c) the same Structs with msgspec.msgpack; (d) today's attrs classes with a
hand-tuned orjson encoding as a positional array (a new stored format).

Then the share of a lone ``nexq.Client.enqueue``'s producer CPU that is
spec work: 20,000 enqueues against a throw-away redis-server, timed with
``time.process_time`` and profiled with cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Annotated, Any, Literal

import attrs
import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
try:
    import msgspec
    from msgspec import Meta
except ImportError:
    sys.exit("msgspec is not installed: .venv/bin/pip install msgspec (benchmark only)")

from common import local_redis, machine_line, write_results

from nexq.codec import decode_spec, encode_spec
from nexq.queue.context import WebhookPolicy
from nexq.queue.requests import (
    MAX_DELAY,
    MAX_HEADER_NAME,
    MAX_HEADERS,
    MAX_HEADERS_SIZE,
    MAX_QUEUE,
    MAX_RETRIES,
    MAX_RUN_AT,
    MAX_TASK_ID,
    MAX_TIMEOUT,
    MAX_TYPE,
    MAX_UNIQUE_KEY,
    QUEUE_PATTERN,
    TYPE_PATTERN,
    WEBHOOK_PATTERN,
    make_spec,
)
from nexq.runtime.task_types import build_request
from nexq.task import DEFAULT_QUEUE, NO_HEADERS, RetryPolicy, TaskSpec, new_task_id, parse_priority

SPECS: dict[str, tuple[str, Any, dict[str, Any]]] = {
    "small": ("emails.send", {"to": "user@example.com", "template": "welcome", "n": 1}, {}),
    "1 KB payload": ("reports.render", {"user": 12345, "tags": ["a", "b", "c"], "title": "Monthly report",
                                        "body": "lorem ipsum dolor sit amet " * 34}, {}),
    "options": ("emails.send", {"to": "user@example.com", "template": "welcome", "n": 1},
                {"delay": 30.0, "priority": "high", "unique_key": "welcome:12345", "expires_in": 3600.0,
                 "max_retries": 5, "timeout": 60.0,
                 "headers": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}),
}


# -- (b), (c): msgspec mirrors of EnqueueRequest and TaskSpec ---------------------------

class RetryS(msgspec.Struct, frozen=True, array_like=True):
    base: float = 1.0
    cap: float = 300.0
    factor: float = 2.0


# omit_defaults omits a Struct-valued field only when it *is* the default object.
DEFAULT_RETRY = RetryS()


def _num(low: float, high: float, *, above: bool = False) -> Any:
    return Annotated[float, Meta(gt=low, le=high) if above else Meta(ge=low, le=high)]


class RequestS(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """EnqueueRequest with make_spec's per-field rules as constraints."""

    type: Annotated[str, Meta(min_length=1, max_length=MAX_TYPE, pattern=TYPE_PATTERN)]
    payload: Any = None
    queue: Annotated[str, Meta(min_length=1, max_length=MAX_QUEUE, pattern=QUEUE_PATTERN)] = DEFAULT_QUEUE
    priority: int | str = 5
    delay: _num(0, MAX_DELAY) | None = None  # type: ignore[valid-type]
    run_at: _num(0, MAX_RUN_AT) | None = None  # type: ignore[valid-type]
    max_retries: Annotated[int, Meta(ge=0, le=MAX_RETRIES)] = 3
    timeout: _num(0, MAX_TIMEOUT, above=True) | None = None  # type: ignore[valid-type]
    unique_key: Annotated[str, Meta(min_length=1, max_length=MAX_UNIQUE_KEY)] | None = None
    task_id: Annotated[str, Meta(min_length=1, max_length=MAX_TASK_ID, pattern="^[^|,:]*$")] | None = None
    retry: RetryS | None = None
    webhook: Annotated[str, Meta(pattern=WEBHOOK_PATTERN)] | None = None
    expires_in: _num(0, MAX_DELAY, above=True) | None = None  # type: ignore[valid-type]
    expires_at: _num(0, MAX_RUN_AT) | None = None  # type: ignore[valid-type]
    depends_on: Annotated[tuple[str, ...], Meta(max_length=1000)] = ()
    on_parent_failure: Literal["cancel", "run"] = "cancel"
    headers: Annotated[dict[Annotated[str, Meta(min_length=1, max_length=MAX_HEADER_NAME)], str],
                       Meta(max_length=MAX_HEADERS)] | None = None


class SpecS(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """TaskSpec under today's stored keys; q, p, mr, c always written (today's
    decode_spec requires them), the rest only when not the default."""

    id: str
    type: str
    queue: str = msgspec.field(name="q")
    priority: int = msgspec.field(name="p")
    payload: Any = msgspec.field(default=None, name="pl")
    max_retries: int = msgspec.field(name="mr")
    timeout: float | None = msgspec.field(default=None, name="to")
    unique_key: str | None = msgspec.field(default=None, name="u")
    created_at: float = msgspec.field(name="c")
    run_at: float | None = msgspec.field(default=None, name="at")
    seq: int = msgspec.field(default=0, name="n")
    retry: RetryS = msgspec.field(default=DEFAULT_RETRY, name="rp")
    webhook: str | None = msgspec.field(default=None, name="wh")
    expires_at: float | None = msgspec.field(default=None, name="xa")
    depends_on: tuple[str, ...] = msgspec.field(default=(), name="dep")
    on_parent_failure: str = msgspec.field(default="cancel", name="opf")
    headers: dict[str, str] = msgspec.field(default_factory=dict, name="h")


def build_msgspec(type: str, payload: Any, options: dict[str, Any], now: float) -> SpecS:
    """make_spec's work with the per-field checks done by msgspec.convert."""
    req = msgspec.convert({"type": type, "payload": payload, **options}, RequestS)
    if req.headers and sum(len(k) + len(v) for k, v in req.headers.items()) > MAX_HEADERS_SIZE:
        raise ValueError(f"headers must hold at most {MAX_HEADERS_SIZE} characters of names and values")
    run_at = now + req.delay if req.delay else req.run_at
    if run_at is not None and run_at <= now:
        run_at = None
    expires_at = now + req.expires_in if req.expires_in is not None else req.expires_at
    if expires_at is not None and expires_at <= max(now, run_at or now):
        raise ValueError("the task would expire before it could start (expires_at <= run time)")
    return SpecS(id=req.task_id or new_task_id(), type=req.type, queue=req.queue,
                 priority=parse_priority(req.priority), payload=req.payload, max_retries=req.max_retries,
                 timeout=req.timeout, unique_key=req.unique_key, created_at=now, run_at=run_at,
                 retry=DEFAULT_RETRY if req.retry is None or req.retry == DEFAULT_RETRY else req.retry,
                 webhook=req.webhook, expires_at=expires_at, depends_on=req.depends_on,
                 on_parent_failure=req.on_parent_failure, headers=req.headers or {})


# -- (d): attrs + orjson, positional ------------------------------------------------------

def encode_array(s: TaskSpec) -> bytes:
    r = s.retry
    return orjson.dumps([1, s.id, s.type, s.queue, s.priority, s.payload, s.max_retries, s.timeout, s.unique_key,
                         s.created_at, s.run_at, s.seq, None if r == RetryPolicy() else [r.base, r.cap, r.factor],
                         s.webhook, s.expires_at, s.depends_on or None, s.on_parent_failure,
                         dict(s.headers) if s.headers else None])


def decode_array(data: bytes) -> TaskSpec:
    (_, tid, type_, queue, prio, payload, mr, to, uk, c, at, n, rp, wh, xa, dep, opf, h) = orjson.loads(data)
    return TaskSpec(tid, type_, queue, prio, payload, mr, to, uk, c, at, n, RetryPolicy(*rp) if rp else RetryPolicy(),
                    wh, xa, tuple(dep) if dep else (), opf, h or NO_HEADERS)


# -- the variants -------------------------------------------------------------------------------

Variant = tuple[Callable[[str, Any, dict[str, Any], float], Any], Callable[[Any], bytes], Callable[[bytes], Any]]
POLICY = WebhookPolicy()


def build_today(type: str, payload: Any, options: dict[str, Any], now: float) -> TaskSpec:
    return attrs.evolve(make_spec(build_request(type, payload, options, None, None), now, POLICY), seq=42)


def build_struct(type: str, payload: Any, options: dict[str, Any], now: float) -> SpecS:
    return msgspec.structs.replace(build_msgspec(type, payload, options, now), seq=42)


VARIANTS: dict[str, Variant] = {
    "(a) today: attrs + make_spec + orjson dict": (build_today, encode_spec, decode_spec),
    "(b) msgspec Struct + convert, msgspec.json": (build_struct, msgspec.json.Encoder().encode,
                                                   msgspec.json.Decoder(SpecS).decode),
    "(c) msgspec Struct + convert, msgspec.msgpack": (build_struct, msgspec.msgpack.Encoder().encode,
                                                      msgspec.msgpack.Decoder(SpecS).decode),
    "(d) today's build, orjson positional array": (build_today, encode_array, decode_array),
}


def timed(fns: dict[str, Callable[[], Any]], repeat: int, target: float = 0.04) -> dict[str, tuple[float, float]]:
    """(median, least) µs per call of each of ``fns`` over ``repeat`` timeit
    repeats of ~``target`` s, the functions interleaved repeat by repeat so
    that a burst of load from other processes hits all of them; the least is
    what a busy machine disturbs least."""
    numbers = {k: max(500, int(target / max(timeit.timeit(f, number=200) / 200, 1e-9))) for k, f in fns.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            times[k].append(timeit.timeit(f, number=numbers[k]) / numbers[k] * 1e6)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def check_compatible() -> list[str]:
    """Each msgspec mirror reads today's stored bytes, today's decode_spec
    reads its JSON, and every variant round-trips every spec."""
    notes = []
    for name, (type_, payload, options) in SPECS.items():
        now = time.time()
        spec = build_today(type_, payload, options, now)
        mirror = msgspec.json.decode(encode_spec(spec), type=SpecS)
        back = decode_spec(msgspec.json.encode(mirror))
        assert back == spec, (name, back, spec)
        assert decode_array(encode_array(spec)) == spec
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(mirror), type=SpecS) == mirror
        notes.append(f"{name}: today's bytes -> SpecS -> msgspec.json -> decode_spec == the original spec")
    return notes


def micro(repeat: int) -> tuple[list[dict[str, Any]], str]:
    rows = []
    steps = {"build_us": lambda b, e, d, t, p, o, now, spec, data: lambda: b(t, p, o, now),
             "encode_us": lambda b, e, d, t, p, o, now, spec, data: lambda: e(spec),
             "decode_us": lambda b, e, d, t, p, o, now, spec, data: lambda: d(data),
             "round_trip_us": lambda b, e, d, t, p, o, now, spec, data: lambda: d(e(b(t, p, o, now)))}
    for spec_name, (type_, payload, options) in SPECS.items():
        now = time.time()
        fns: dict[str, Callable[[], Any]] = {}
        sizes = {}
        for variant, (build, encode, decode) in VARIANTS.items():
            spec = build(type_, payload, options, now)
            data = encode(spec)
            sizes[variant] = len(data)
            for step, make in steps.items():
                fns[f"{variant}\0{step}"] = make(build, encode, decode, type_, payload, options, now, spec, data)
        result = timed(fns, repeat)
        for variant in VARIANTS:
            rows.append({"spec": spec_name, "variant": variant, "bytes": sizes[variant],
                         **{step: result[f"{variant}\0{step}"] for step in steps}})
            print(f"{spec_name} {variant}: {rows[-1]}", file=sys.stderr)
    lines = ["| spec | variant | bytes | build + validate µs | encode µs | decode µs | round trip µs |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = " | ".join(f"{r[k][0]:.2f} ({r[k][1]:.2f})" for k in ("build_us", "encode_us", "decode_us",
                                                                         "round_trip_us"))
        lines.append(f"| {r['spec']} | {r['variant']} | {r['bytes']} | {cells} |")
    return rows, "\n".join(lines) + "\n"


def breakdown(repeat: int) -> tuple[dict[str, Any], str]:
    """Where today's build of the small spec goes, step by step, beside the
    msgspec steps that would replace them."""
    type_, payload, options = SPECS["small"]
    now = time.time()
    req = build_request(type_, payload, options, None, None)
    spec = make_spec(req, now, POLICY)
    fields = attrs.asdict(spec, recurse=False)
    mirror = build_msgspec(type_, payload, options, now)
    sfields = {f: getattr(mirror, f) for f in mirror.__struct_fields__}
    fns: dict[str, Callable[[], Any]] = {
        "build_request (options -> EnqueueRequest)": lambda: build_request(type_, payload, options, None, None),
        "make_spec (checks -> TaskSpec)": lambda: make_spec(req, now, POLICY),
        "attrs.evolve(spec, seq=n)": lambda: attrs.evolve(spec, seq=42),
        "TaskSpec(**every field) alone": lambda: TaskSpec(**fields),
        "new_task_id()": new_task_id,
        "msgspec.convert(dict -> RequestS)": lambda: msgspec.convert({"type": type_, "payload": payload}, RequestS),
        "SpecS(**every field) alone": lambda: SpecS(**sfields),
        "msgspec.structs.replace(spec, seq=n)": lambda: msgspec.structs.replace(mirror, seq=42),
    }
    result = timed(fns, repeat)
    md = "| step (small spec) | µs median (least) |\n|---|---:|\n" + "".join(
        f"| {k} | {m:.2f} ({lo:.2f}) |\n" for k, (m, lo) in result.items())
    return result, md


# Functions of the spec work inside Client.enqueue (cProfile's names).
SPEC_WORK = {"build_request": "task_types.py", "make_spec": "requests.py", "encode_spec": "codec.py",
             "evolve": "attr", "check_options": "task_types.py"}


def enqueue_profile(n: int) -> tuple[dict[str, Any], str]:
    """Producer CPU of ``n`` lone Client.enqueue calls, and the share of it
    that cProfile puts under the spec functions (inclusive)."""
    import nexq

    type_, payload, _ = SPECS["small"]
    with local_redis() as url:
        client = nexq.Client(url, namespace="specbench")
        for _ in range(500):  # connect, read the registry, warm the caches
            client.enqueue(type_, payload)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            client.enqueue(type_, payload)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        prof = cProfile.Profile(time.process_time)  # CPU, not the wait for redis-server
        prof.enable()
        for _ in range(n):
            client.enqueue(type_, payload)
        prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    found: dict[str, float] = {}
    for (file, _, func), (_, _, _, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        if func in SPEC_WORK and SPEC_WORK[func] in file:
            found[func] = found.get(func, 0.0) + ct
    # make_spec is called from the producer; build_request is separate; evolve and encode_spec too.
    shares = {f: ct / total for f, ct in found.items()}
    doc = {"enqueues": n, "wall_us": wall / n * 1e6, "cpu_us": cpu / n * 1e6, "profiled_total_us": total / n * 1e6,
           "profiled_us": {f: ct / n * 1e6 for f, ct in found.items()}, "profiled_share": shares}
    top = "\n".join(f"| `{f}` | {doc['profiled_us'][f]:.1f} | {shares[f]:.1%} |" for f in sorted(found))
    spec_share = sum(shares[f] for f in ("build_request", "make_spec", "evolve", "encode_spec") if f in shares)
    md = (f"{n:,}-call loop of `Client.enqueue({type_!r}, small payload)` on a throw-away redis-server: "
          f"**{doc['cpu_us']:.0f} µs of producer CPU** per enqueue ({doc['wall_us']:.0f} µs wall) without profiler.\n\n"
          f"Under cProfile, timing CPU ({doc['profiled_total_us']:.0f} µs per enqueue, inflated by the profiler), the spec "
          "functions, inclusive:\n\n| function | µs per enqueue (cProfile) | share of the profiled total |\n"
          f"|---|---:|---:|\n{top}\n\nbuild_request + make_spec + evolve + encode_spec together: "
          f"**{spec_share:.1%}** of the profiled producer time.\n")
    doc["spec_share"] = spec_share
    return doc, md


def load1m() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=25, help="timeit repeats per figure (default 25): median (least)")
    ap.add_argument("--enqueues", type=int, default=20_000, help="Client.enqueue calls to time and profile")
    ap.add_argument("--out-dir", help="also write the tables and the figures (JSON) there")
    args = ap.parse_args()
    load0 = load1m()
    notes = check_compatible()
    rows, md_micro = micro(args.repeat)
    steps, md_steps = breakdown(args.repeat)
    prof, md_prof = enqueue_profile(args.enqueues)
    small = {r["variant"][:3]: r for r in rows if r["spec"] == "small"}
    for key, r in small.items():
        spent = r["build_us"][0] + r["encode_us"][0]
        prof.setdefault("micro_share", {})[key] = spent / prof["cpu_us"]
        md_prof += (f"\n{key} build + encode of the small spec (medians above): {spent:.1f} µs = "
                    f"**{spent / prof['cpu_us']:.0%}** of the {prof['cpu_us']:.0f} µs a lone enqueue costs.")
    md_prof += "\n"
    load1 = load1m()
    command = "python benchmarks/spec_codec.py " + " ".join(sys.argv[1:])
    md = (f"`{command}` ({machine_line()}; msgspec {msgspec.__version__}, orjson {orjson.__version__}, "
          f"attrs {attrs.__version__}; 1-minute load {load0:.2f} at the start, {load1:.2f} at the end)\n\n"
          + md_micro + "\n" + "\n".join(f"- {n}" for n in notes) + "\n\n" + md_steps + "\n" + md_prof)
    if args.out_dir:
        write_results(args.out_dir, time.strftime("spec-codec-%Y-%m-%d"),
                      {"command": command, "machine": machine_line(), "load": [load0, load1], "micro": rows,
                       "steps": steps,
                       "enqueue": prof}, md)
    else:
        print(md)


if __name__ == "__main__":
    main()
