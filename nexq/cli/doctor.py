"""``nexq doctor``: is this store fit to hold a queue? Findings with advice.

Checks: reachable, credentials, every command Nexq needs (with the
semantics it relies on), memory, persistence, and clock skew between this
machine, the store and the registered workers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import attrs

from ..errors import StoreAuthError, StoreError, StoreUnavailable
from ..keys import Keys
from ..runtime.guard import eviction_advice, memory_used
from ..runtime.registry import WorkerRegistry
from ..store import Batch, Store, StoreURL, open_store


@attrs.frozen
class Finding:
    level: str  # ok | warn | fail
    check: str
    message: str


async def _commands(store: Store, prefix: str) -> list[Finding]:
    """Run every primitive Nexq uses on scratch keys; compare the answers."""
    k = [f"{prefix}{i}" for i in range(4)]
    b = Batch()
    b.set(k[0], b"a", nx=True).set(k[0], b"b", nx=True)  # True, False
    b.set(k[1], b"x", xx=True, get=True)  # None: XX GET on a missing key stores nothing
    b.set(k[0], b"c", get=True, px=60_000)  # b"a"
    b.set(k[0], b"d", keepttl=True).pttl(k[0])  # True, 0 < ttl
    b.incrby(k[2], 5).incr(k[2]).append(k[3], b"1,").append(k[3], b"2,")  # 5, 6, 2, 4
    b.mget([k[0], k[1], k[3]]).exists(k[0], k[1]).expire(k[2], 60).delete(*k)
    want = [True, False, None, b"a", True, "ttl", 5, 6, 2, 4, [b"d", None, b"1,2,"], 1, True, 3]
    try:
        got = await store.execute(b)
    except StoreError as exc:
        return [Finding("fail", "commands", f"a command Nexq needs failed: {exc}")]
    bad = []
    for i, (g, w) in enumerate(zip(got, want)):
        if w == "ttl":
            if not (isinstance(g, int) and 0 < g <= 60_000):
                bad.append(f"#{i} PTTL after SET KEEPTTL answered {g!r}")
        elif g != w:
            bad.append(f"#{i} answered {g!r}, expected {w!r}")
    if bad:
        return [Finding("fail", "commands", "semantics differ from Pogocache's: " + "; ".join(bad))]
    return [Finding("ok", "commands", "SET NX/XX/GET/PX/KEEPTTL, GET, MGET, DEL, INCR(BY), APPEND, "
                    "EXISTS, EXPIRE, PTTL behave as Nexq needs")]


def human_bytes(n: float) -> str:
    """``1288490188`` -> ``"1.2 GiB"``; below 1 KiB in bytes."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} TiB"


async def diagnose(store: Store, namespace: str = "nexq", memory_limit: int | None = None) -> list[Finding]:
    out: list[Finding] = []
    try:
        await store.ping()  # the first one pays for connecting
        rtt = min([await store.ping() for _ in range(5)])
    except StoreAuthError as exc:
        return [Finding("fail", "credentials", f"{exc}: pass the password in the URL (pogocache://:PASSWORD@host)")]
    except StoreUnavailable as exc:
        return [Finding("fail", "reachable", f"{exc}: is the server running and listening on that address?")]
    out.append(Finding("ok" if rtt < 0.005 else "warn", "reachable",
                       f"{rtt * 1000:.2f} ms round trip" + ("" if rtt < 0.005 else " (slow: every task costs ~6 round trips)")))
    out += await _commands(store, f"{namespace}:doctor:{os.urandom(4).hex()}:")
    info = await store.info()
    used = memory_used(info)
    if store.kind == "memory":
        out.append(Finding("ok", "memory", f"embedded store, {info.get('keys')} keys, ~{human_bytes(used or 0)}"))
    elif used is None:
        out.append(Finding("warn", "memory", "the server does not report its memory (Redis without INFO): "
                           "Nexq cannot refuse work before it fills up"))
    else:
        limit = f", Nexq refuses new tasks at {human_bytes(memory_limit)}" if memory_limit else \
            " (no --store-memory-limit: set one below the server's memory so Nexq refuses work before eviction)"
        level = "warn" if not memory_limit or used > 0.8 * memory_limit else "ok"
        out.append(Finding(level, "memory", f"{human_bytes(used)} in use, {info.get('keys', '?')} keys{limit}"))
    advice = eviction_advice(store.kind, memory_limit)
    if advice:  # Nexq cannot read --maxmemory or maxmemory-policy: say what must hold
        out.append(Finding("warn", "eviction", advice))
    out.append(await _persistence(store))
    out += await _clocks(store, info, namespace)
    return out


async def _persistence(store: Store) -> Finding:
    if store.kind == "memory":
        if (await store.info()).get("durable") == "yes":
            return Finding("ok", "persistence", "embedded store: every acknowledged write is journaled")
        return Finding("warn", "persistence", "embedded store in memory only: give it a data directory")
    if store.kind != "pogocache":
        return Finding("warn", "persistence", "cannot inspect a Redis server's persistence (no CONFIG): "
                       "use appendonly yes with appendfsync everysec or always")
    try:
        await store.save()
    except StoreError as exc:
        return Finding("fail", "persistence", f"SAVE failed ({exc}): start Pogocache with --persist FILE, "
                       "or a restart loses every task")
    return Finding("ok", "persistence", "SAVE works: Nexq's scheduler saves every --save-interval seconds")


async def _clocks(store: Store, info: dict[str, str], namespace: str) -> list[Finding]:
    out = []
    now = time.time()
    if info.get("time", "").isdigit():
        skew = now - int(info["time"])
        level = "ok" if abs(skew) < 2 else "warn"
        out.append(Finding(level, "clock", f"this machine is {skew:+.1f} s from the store's clock"))
    workers = await WorkerRegistry(store, Keys(namespace)).list()
    ahead = [w["id"] for w in workers if w.get("last_heartbeat", 0) - now > 1.0]
    if ahead:
        out.append(Finding("warn", "clock", f"workers with clocks ahead of this machine by >1 s: {', '.join(ahead)}; "
                           "scheduled tasks may start early or late there (use NTP)"))
    else:
        out.append(Finding("ok", "clock", f"{len(workers)} live workers, no clock ahead of this machine by >1 s"))
    return out


async def run_doctor(url: str | StoreURL, namespace: str, memory_limit: int | None, options: dict[str, Any],
                     emit: Callable[[str], Any] = print) -> int:
    """Print the findings; returns the exit status (1 if any check failed)."""
    async with open_store(url, **options) as store:
        findings = await diagnose(store, namespace, memory_limit)
    for f in findings:
        emit(f"{f.level.upper():5} {f.check:12} {f.message}")
    return 1 if any(f.level == "fail" for f in findings) else 0

