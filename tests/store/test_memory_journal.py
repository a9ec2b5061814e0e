"""The embedded store's durability: acknowledged writes survive SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from nexq.store.journal import DataDirInUse
from nexq.store.memory import MemoryStore

WRITER = textwrap.dedent(
    """
    import sys, trio
    from nexq.store.memory import MemoryStore

    async def main():
        store = MemoryStore(sys.argv[1])
        i = 0
        while True:
            await store.set(f"k{i}", f"v{i}")
            await store.incr("count")
            await store.append("list", f"{i},")
            print(i, flush=True)  # acknowledged: the writes above returned
            i += 1

    trio.run(main)
    """
)


@pytest.mark.slow  # a writer process, killed with SIGKILL
def test_every_acknowledged_write_survives_sigkill(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, data], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    last = -1
    for line in proc.stdout:
        last = int(line)
        if last >= 3000:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    async def check() -> None:
        store = MemoryStore(data)
        got = await store.mget([f"k{i}" for i in range(last + 1)])
        assert got == [f"v{i}".encode() for i in range(last + 1)]
        count = int(await store.get("count") or 0)
        assert count >= last + 1  # the kill may land after one more incr
        items = (await store.get("list") or b"").decode().split(",")[:-1]
        assert items[: last + 1] == [str(i) for i in range(last + 1)]
        await store.aclose()

    trio.run(check)


async def test_ttl_and_deletes_survive_reopen(tmp_path: Path) -> None:
    data = str(tmp_path)
    store = MemoryStore(data)
    await store.set("lease", b"w", px=60_000)
    await store.set("gone", b"x")
    await store.delete("gone")
    await store.set("short", b"s", px=1)
    await store.aclose()
    await trio.sleep(0.01)  # past "short"'s 1 ms TTL: the reopened store must not bring it back
    store = MemoryStore(data)
    assert await store.get("lease") == b"w"
    assert 0 < await store.pttl("lease") <= 60_000
    assert await store.get("gone") is None
    assert await store.get("short") is None
    await store.aclose()


async def test_torn_tail_is_cut_and_earlier_writes_kept(tmp_path: Path) -> None:
    store = MemoryStore(str(tmp_path))
    await store.set("a", b"1")
    await store.set("b", b"2")
    await store.aclose()
    path = tmp_path / "journal.nxj"
    whole = path.read_bytes()
    path.write_bytes(whole + whole[:-3])  # a second copy, torn inside its last record
    store = MemoryStore(str(tmp_path))
    assert await store.mget(["a", "b"]) == [b"1", b"2"]
    await store.set("c", b"3")
    await store.aclose()
    store = MemoryStore(str(tmp_path))
    assert await store.mget(["a", "b", "c"]) == [b"1", b"2", b"3"]
    await store.aclose()


async def test_journal_is_compacted_and_stays_bounded(tmp_path: Path) -> None:
    store = MemoryStore(str(tmp_path), min_compact_bytes=64 * 1024)
    for i in range(20_000):
        await store.set(f"k{i % 10}", f"value-{i}")
    size = os.path.getsize(tmp_path / "journal.nxj")
    assert size < 128 * 1024
    await store.aclose()
    store = MemoryStore(str(tmp_path))
    assert await store.get("k9") == b"value-19999"
    await store.aclose()


async def test_a_data_dir_serves_one_process_at_a_time(tmp_path: Path) -> None:
    store = MemoryStore(str(tmp_path))
    with pytest.raises(DataDirInUse, match="in use"):
        MemoryStore(str(tmp_path))
    await store.aclose()
    again = MemoryStore(str(tmp_path))
    await again.aclose()


async def test_ttls_follow_the_trio_clock(autojump_clock: MockClock) -> None:
    store = MemoryStore()
    await store.set("k", b"v", px=10_000)
    await trio.sleep(9.9)  # time passing (autojump) is the behaviour: just before the TTL...
    assert await store.get("k") == b"v"
    await trio.sleep(0.2)  # ...and just after
    assert await store.get("k") is None
