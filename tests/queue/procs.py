"""Child-process roles for the multi-process queue test.

    python -m tests.queue.procs produce URL NS START COUNT
    python -m tests.queue.procs claim URL NS OUTFILE

A claimer acks what it claims and writes one task payload per line, until
it finds the ``done`` marker and its lanes empty.
"""

from __future__ import annotations

import sys

import trio

from nexq.queue import NodeBroker, EnqueueRequest, LaneReader
from nexq.store import open_store


async def produce(url: str, ns: str, start: int, count: int) -> None:
    async with open_store(url) as store:
        br = NodeBroker(store, namespace=ns)
        for i in range(start, start + count, 50):
            # mixed sizes: singles and small bulks interleave with other producers
            if (i // 50) % 2:
                for j in range(i, min(i + 50, start + count)):
                    await br.enqueue("t", j, priority=j % 10)
            else:
                await br.enqueue_many([EnqueueRequest("t", j, priority=j % 10)
                                       for j in range(i, min(i + 50, start + count))])


async def claim(url: str, ns: str, out: str) -> None:
    async with open_store(url) as store:
        br = NodeBroker(store, namespace=ns, hole_grace=1.0)
        reader = LaneReader(store, br.keys, grace=1.0)
        idle = 0
        with open(out, "w") as f:
            while True:
                got = await br.claim(["default"], 16, "w", reader)
                for c in got:
                    f.write(f"{c.spec.payload}\n")
                for c in got:
                    await br.ack(c)
                f.flush()
                if got:
                    idle = 0
                    continue
                idle += 1
                if idle > 20 and await store.get(ns + ":done"):
                    return
                await trio.sleep(0.01)


if __name__ == "__main__":
    role, url, ns, *rest = sys.argv[1:]
    if role == "produce":
        trio.run(produce, url, ns, int(rest[0]), int(rest[1]))
    else:
        trio.run(claim, url, ns, rest[0])
