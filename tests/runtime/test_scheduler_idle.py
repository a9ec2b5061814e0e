"""Many schedulers on one store: one polls the wheel at bucket pace, the
others back off, and due tasks stay as prompt as with one scheduler."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import redis
import trio

from nexq.codec import decode_cur
from nexq.queue import NodeBroker
from nexq.runtime.scheduler import WHEEL_IDLE_MAX, Scheduler
from nexq.store import open_store

N = 4


def commands(port: int) -> int:
    with redis.Redis(port=port, protocol=2) as r:
        stats = r.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


async def lateness(br: NodeBroker, delays: list[float]) -> list[float]:
    """Seconds from each delayed task's due time to its promotion (``cur``'s time once pending)."""
    done = [await br.enqueue("t", i, delay=d) for i, d in enumerate(delays)]
    out: list[float] = []
    with trio.fail_after(max(delays) + 5):
        for e in done:
            while True:
                _, state, at, _ = decode_cur(await br.store.get(br.keys.cur(e.task_id)) or b"1|x|0|0")
                if state == "pending":
                    spec = (await br.inspector().get(e.task_id)).spec  # type: ignore[union-attr]
                    out.append(at - spec.run_at)  # type: ignore[operator]
                    break
                await trio.sleep(0.02)
    return out


async def test_idle_schedulers_leave_the_wheel_to_one_and_stay_prompt(own_redis: Any) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}"
    async with AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(open_store(url)) for _ in range(N)]
        brokers = [NodeBroker(s, namespace="idle") for s in stores]
        scheds = [Scheduler(b) for b in brokers]
        scopes = [trio.CancelScope() for _ in scheds]

        async def run(i: int, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with scopes[i]:
                await scheds[i].run(task_status=task_status)

        async with trio.open_nursery() as nursery:
            for i in range(N):
                await nursery.start(run, i)
            await trio.sleep(2 * WHEEL_IDLE_MAX)  # the back-off settles
            before, t0 = commands(own_redis.port), trio.current_time()
            await trio.sleep(2.0)  # the idle window being measured
            per_s = (commands(own_redis.port) - before) / (trio.current_time() - t0)
            # One scheduler at bucket pace (GET, INCRBY, MGET, DEL per 100 ms
            # bucket: 40/s), the others about one GET per WHEEL_IDLE_MAX.
            # Without the back-off each of the four polled every bucket: ~65/s.
            assert per_s < 40 + (N - 1) * 2 / WHEEL_IDLE_MAX + 10, per_s
            assert sum(1 for s in scheds if s.wheel_idle == 0) >= 1

            late = await lateness(brokers[0], [0.3 + 0.05 * i for i in range(12)])
            assert min(late) >= 0 and max(late) < 0.25, late  # one bucket plus a poll

            # The active scheduler(s) stop: a backed-off one takes over within WHEEL_IDLE_MAX.
            for i, s in enumerate(scheds):
                if s.wheel_idle == 0:
                    scopes[i].cancel()
            assert any(s.wheel_idle > 0 for i, s in enumerate(scheds) if not scopes[i].cancel_called)
            late = await lateness(brokers[0], [0.3, 0.6, 0.9])
            assert max(late) < WHEEL_IDLE_MAX + 0.25, late
            nursery.cancel_scope.cancel()
