"""A store that forgets writes out of order: every surviving task still ends.

What a Pogocache restart does (any subset of recent writes gone, not a
suffix) is simulated on the RESP store by deleting a random part of the
queue's keys behind Nexq's back, several times while tasks flow. Tasks
whose spec or index entry survived must all reach a terminal state; the
reconciler is what gets them there.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio

from nexq import Nexq
from nexq.config import Settings
from nexq.runtime.service import Service, run_service

pytestmark = pytest.mark.slow

# Families a restart may drop that a task can be repaired from (a lost spec
# or index entry loses the task itself: counted, not repaired).
FORGETTABLE = (":cur:", ":lane:", ":lease:", ":wheel:", ":fin:", ":mv:", ":queues", ":rel:", ":deps:")


def forget_some(checker: Any, prefix: str, rng: random.Random, share: float) -> int:
    keys = [k.decode() for k in checker.scan_iter(match=f"{prefix}*", count=1000)]
    doomed = [k for k in keys if any(f in k for f in FORGETTABLE) and rng.random() < share]
    if doomed:
        checker.delete(*doomed)
    return len(doomed)


def counting_app(work: float) -> tuple[Nexq, dict[str, int]]:
    """An app whose task ``t`` counts its runs per id and takes ``work`` seconds."""
    app = Nexq()
    ran: dict[str, int] = {}

    @app.task("t")
    async def t(ctx: Any, payload: Any) -> int:
        ran[ctx.id] = ran.get(ctx.id, 0) + 1
        await trio.sleep(work)
        return int(payload)

    return app, ran


def quick_settings(url: str, prefix: str, **overrides: Any) -> Settings:
    """A scheduler that reconciles every half second, 2 s leases, no SAVE."""
    return Settings(**{"store": url, "namespace": prefix.rstrip(":"), "lease": 2.0, "reconcile_interval": 0.5,
                       "save_interval": 0, "shutdown_grace": 1, **overrides})


async def test_tasks_survive_a_store_that_forgets_writes(resp_url: str, prefix: str, checker: Any) -> None:
    rng = random.Random(7)
    app, ran = counting_app(0.05)  # the work: long enough for a lease to be forgotten mid-run
    settings = quick_settings(resp_url, prefix, reconcile_grace=1.5, concurrency=20)
    async with trio.open_nursery() as nursery:
        svc: Service = await nursery.start(lambda task_status: run_service(
            settings, app, api=False, handle_signals=False, task_status=task_status))
        ids: list[str] = []
        forgotten = 0
        for round_no in range(6):
            for i in range(60):
                delay = rng.choice([None, None, None, 0.3, 1.0])
                h = await app.enqueue("t", i, delay=delay, max_retries=rng.choice([0, 2]))
                ids.append(h.id)
            await trio.sleep(0.2)
            forgotten += await trio.to_thread.run_sync(forget_some, checker, prefix, rng, 0.15)
        assert forgotten > 50
        ins = svc.runtime.inspector
        with trio.fail_after(90):
            while True:
                tasks = await ins.get_many(ids)
                alive = [x for x in tasks if x is not None]
                if all(x.status.terminal for x in alive):
                    break
                await trio.sleep(0.2)
        svc.stop.set()
    assert len(alive) == len(ids)  # no spec or index entry was forgotten
    # Dead only where the store forgot a running attempt's lease: the reaper
    # cannot tell that from a crashed worker, and a lost attempt counts.
    for x in alive:
        assert x.status.value in ("succeeded", "dead"), x.status
        if x.status.value == "dead":
            assert x.attempts[-1].outcome is not None and x.attempts[-1].outcome.value == "lost"
    assert set(ran) == set(ids)
    assert svc.runtime.reconciler.totals.repairs > 0


async def test_a_task_whose_index_entry_and_lane_slot_were_lost_ends_once_looked_up(
        resp_url: str, prefix: str, checker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The restart loss nothing else can find: a live task's index entry and
    lane slot (and for some its ``cur``) gone, its spec left. A lookup by id
    adopts it; the reconciler then repairs it and it runs."""
    from nexq.queue import orphans

    monkeypatch.setattr(orphans, "ADOPT_AFTER", 0.5)  # instead of 30 s: the test's tasks are young
    app, ran = counting_app(0.0)
    settings = quick_settings(resp_url, prefix, reconcile_grace=0.5, concurrency=5)
    async with trio.open_nursery() as nursery:
        svc: Service = await nursery.start(lambda task_status: run_service(
            settings, app, api=False, handle_signals=False, task_status=task_status))
        await svc.runtime.inspector.pause("default")
        ids = [(await app.enqueue("t", i)).id for i in range(20)]
        ids += [(await app.enqueue("t", i, delay=0.3)).id for i in range(5)]
        # The restart: index entries, lane slots and wheel entries gone; for a few, cur too.
        doomed = [k.decode() for k in checker.scan_iter(match=f"{prefix}*", count=1000)
                  if any(f in k.decode() for f in (":idx:", ":lane:", ":wheel:"))]
        doomed += [f"{prefix}cur:{tid}" for tid in ids[::4]]
        checker.delete(*doomed)
        await svc.runtime.inspector.resume("default")
        ins = svc.runtime.inspector
        with trio.fail_after(60):
            while True:
                tasks = await ins.get_many(ids)  # what handle.result() does, every id
                if all(x is not None and x.status.terminal for x in tasks):
                    break
                await trio.sleep(0.2)
        listed = {x.id for x in (await ins.list(limit=100)).tasks}
        svc.stop.set()
    assert all(x is not None and x.status.value == "succeeded" for x in tasks)
    assert set(ran) == set(ids)
    assert svc.runtime.reconciler.totals.adopted >= len(ids)
    assert set(ids) <= listed  # every adopted task is in the listing again
