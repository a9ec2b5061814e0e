"""Reserved numbers, measured against the alternatives (docs/design.md, "Enqueue").

    python benchmarks/reservations.py [--url URL] [--tasks N]

Three producer policies, each through the trio NodeBroker (one process, a
plain loop of single enqueues, then 4 producers alternating single
enqueues over 10 priorities, then a claimer draining the lanes):

* ``none``: no reservation (the protocol before: ``INCRBY seq`` and
  ``INCRBY tail``, then the write: 2 round trips per enqueue);
* ``last-call`` (shipped): a block the size of the producer's last call,
  reserved in the write before while the producer is busy;
* ``doubling``: blocks doubling each time one is used up, up to 64 (the
  first design tried: fewer ``INCRBY`` per enqueue, more empty slots).

Per policy: enqueue rate, round trips and commands per enqueue (sequential),
slots left reserved and empty when the producers stop, and the claimer's
rounds and slots peeked per task claimed before any hole's grace ran out.
"""

from __future__ import annotations

import argparse
import time
import uuid

import trio
from common import Counting, machine_line, store_url

from nexq.keys import Keys
from nexq.queue import LaneReader, NodeBroker
from nexq.queue.lanes import read_lanes
from nexq.queue.reservations import MAX_BLOCK, Block, Counter, Reservations
from nexq.store import Batch, Store, open_store


class Doubling(Reservations):
    """Blocks that double while used up (1, 2, 4 ... 64)."""

    def __init__(self, keys: Keys) -> None:
        super().__init__(keys)
        self.grown: dict[Counter, int] = {}

    def reserve(self, b: Batch, need: dict[Counter, int]) -> list[tuple[Counter, int, int]]:
        plan = []
        counters = list(need) + [c for c in self.blocks if c not in need and not self.blocks[c].left]
        for c in counters:
            block: Block | None = self.blocks.get(c)
            extra = 0
            if block is None or not block.left:
                extra = self.grown.get(c, 1)
                if block is not None:
                    extra = self.grown[c] = min(MAX_BLOCK, extra * 2)
            n = need.get(c, 0) + extra
            if n:
                plan.append((c, len(b), n))
                b.incrby(self.keys.seq if c is None else self.keys.lane_tail(*c), n)
        return plan


class NoReservation(Reservations):
    """Reserves nothing ahead: every call asks for its numbers first."""

    def reserve(self, b: Batch, need: dict[Counter, int]) -> list[tuple[Counter, int, int]]:
        plan = []
        for c, n in need.items():
            plan.append((c, len(b), n))
            b.incrby(self.keys.seq if c is None else self.keys.lane_tail(*c), n)
        return plan


POLICIES = {"none": NoReservation, "last-call": Reservations, "doubling": Doubling}


def broker(store: Store, ns: str, policy: str) -> NodeBroker:
    br = NodeBroker(store, namespace=ns, coalesce=False)
    br.producer.reservations = POLICIES[policy](br.keys)
    return br


async def sequential(url: str, policy: str, n: int) -> tuple[float, float, float]:
    async with open_store(url) as raw:
        store = Counting(raw)
        br = broker(store, "rb" + uuid.uuid4().hex[:6], policy)
        for i in range(20):
            await br.enqueue("warm-up", i)
        store.round_trips = store.commands = 0
        t0 = time.perf_counter()
        for i in range(n):
            await br.enqueue("noop", i)
        dt = time.perf_counter() - t0
        return n / dt, store.round_trips / n, store.commands / n


async def producers_then_claimer(url: str, policy: str, n: int) -> tuple[int, float, float, int]:
    async with open_store(url) as store:
        ns = "rb" + uuid.uuid4().hex[:6]
        brokers = [broker(store, ns, policy) for _ in range(4)]
        per = n // 4
        for i in range(per):  # interleaved: each producer's blocks sit between the others' tasks
            for k, br in enumerate(brokers):
                await br.enqueue("noop", k * per + i, priority=i % 10)
        claimer = NodeBroker(store, namespace=ns)
        _, states = await read_lanes(store, claimer.keys, ["default"])
        empty = sum(st.tail - st.head - st.pending for st in states.values())
        reader, got, rounds, peeked = LaneReader(store, claimer.keys), 0, 0, 0
        real_peek = reader.peek

        async def counting_peek(plan: list[tuple[tuple[str, int], int, int]]) -> list[object]:
            nonlocal peeked
            peeked += sum(count for _, _, count in plan)
            return await real_peek(plan)  # type: ignore[return-value]

        reader.peek = counting_peek  # type: ignore[assignment,method-assign]
        with trio.move_on_after(4):  # under the holes' 5 s grace: what claimers do meanwhile
            while got < per * 4:
                rounds += 1
                for c in await claimer.claim(["default"], 16, "w", reader):
                    got += 1
                    await claimer.ack(c)
        return empty, rounds / max(got, 1), peeked / max(got, 1), got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="store URL (default: a redis-server started here)")
    ap.add_argument("--tasks", type=int, default=5000)
    args = ap.parse_args()
    print(f"Machine: {machine_line()}\n")

    def show(url: str) -> None:
        print(f"Store: {url.split('://')[0]}\n")
        print("| policy | sequential enqueue/s | round trips/enqueue | commands/enqueue | empty slots left "
              "(4 producers stop) | claim rounds per task | slots peeked per task | claimed before the grace |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for policy in POLICIES:
            rate, rts, cmds = trio.run(sequential, url, policy, args.tasks)
            empty, rounds, peeked, got = trio.run(producers_then_claimer, url, policy, 2000)
            print(f"| {policy} | {rate:,.0f} | {rts:.2f} | {cmds:.2f} | {empty} | {rounds:.3f} | {peeked:.2f} | "
                  f"{got:,} / 2,000 |")

    with store_url(args.url) as url:
        show(url)


if __name__ == "__main__":
    main()
