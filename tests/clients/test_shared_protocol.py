"""The clients run the queue protocols the trio runtime runs: no copy of them."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Sequence
from pathlib import Path

from nexq import AsyncClient, Middleware, Nexq
from nexq.queue import NodeBroker
from nexq.store.planned import PlannedStore
from nexq.task import TaskSpec

ROOT = Path(__file__).resolve().parents[2]


class Seen(Middleware):
    """Records what Producer.write_specs announces (its only caller of after_enqueue)."""

    def __init__(self) -> None:
        self.created: list[tuple[NodeBroker, str]] = []

    async def after_enqueue(self, node: NodeBroker, specs: Sequence[TaskSpec]) -> None:
        self.created += [(node, s.id) for s in specs]


def test_both_clients_enqueue_through_the_producer_of_a_node_broker(resp_url: str, ns: str) -> None:
    seen = Seen()
    app = Nexq(resp_url, namespace=ns, middleware=[seen])
    one = app.client().enqueue("t").id
    many = [h.id for h in app.client().enqueue_many([("t", i) for i in range(3)])]

    async def main() -> str:
        async with AsyncClient(app=app) as client:
            return (await client.enqueue("t")).id

    last = asyncio.run(main())
    assert [tid for _, tid in seen.created] == [one, *many, last]
    assert all(isinstance(node, NodeBroker) and isinstance(node.store, PlannedStore) for node, _ in seen.created)


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_client_modules_build_no_store_commands_of_their_own() -> None:
    # Key names, value encodings and batches are the queue layer's: the
    # clients only hand its coroutines to a driver.
    for name in ("client.py", "aio_client.py", "producing.py"):
        found = imports(ROOT / "nexq" / name)
        assert not {".codec", ".store", ".store.base"} & found, (name, found)
        assert "Batch(" not in (ROOT / "nexq" / name).read_text()
    for name in ("blocking.py", "aio.py", "planned.py", "transport.py"):
        found = imports(ROOT / "nexq" / "store" / name)
        assert not any(n.startswith(("..queue", "..codec", "..keys")) for n in found), (name, found)
