"""The store layer: bytes and connections, below the queue.

``open_store(url)`` picks the store by URL scheme (see :mod:`nexq.store.url`)
and owns its lifetime::

    async with open_store("pogocache://127.0.0.1:9401") as store:
        await store.set("k", b"v", px=1000)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from .base import Batch, Store
from .url import StoreURL, parse_store_url, split_store_urls

__all__ = ["Batch", "Store", "StoreURL", "open_nodes", "open_store", "open_stores", "parse_store_url",
           "split_store_urls"]


@asynccontextmanager
async def open_store(url: str | StoreURL, **options: Any) -> AsyncIterator[Store]:
    """Open the store at ``url`` for the duration of the ``async with``.

    ``options`` go to the store (e.g. ``pool_size``, ``command_timeout`` for
    RESP stores). A cluster URL gives its home partition. Raises InvalidStoreURL for a bad URL; a RESP store that is
    down raises StoreUnavailable on first use, not here.
    """
    parsed = parse_store_url(url) if isinstance(url, str) else url
    if parsed.embedded:
        from .memory import MemoryStore

        mem = MemoryStore(data_dir=parsed.path or None, **options)
        try:
            yield mem
        finally:
            await mem.aclose()
    elif parsed.cluster:
        # The home partition: the keys the runtime keeps its cluster-wide
        # records under, every batch one slot (nexq.store.cluster_partition).
        # The whole cluster as one Store is nexq.store.cluster.open_cluster_store.
        from .cluster import open_cluster_store
        from .cluster_partition import partitions

        async with open_cluster_store(parsed, **options) as cluster:
            yield partitions(cluster, parsed.partitions)[0][1]
    else:
        from .resp import open_resp_store

        async with open_resp_store(parsed, **options) as resp:
            yield resp


@asynccontextmanager
async def open_stores(urls: Sequence[str | StoreURL], **options: Any) -> AsyncIterator[list[Store]]:
    """:func:`open_store` for each of several nodes, all closed on exit."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(open_store(u, **options)) for u in urls]


@asynccontextmanager
async def open_nodes(urls: Sequence[StoreURL], **options: Any) -> AsyncIterator[list[tuple[str, Store]]]:
    """The queue's store nodes, as (name, store), home first: one per URL,
    or for one cluster URL its partitions (:mod:`.cluster_partition`)."""
    if len(urls) == 1 and urls[0].cluster:
        from .cluster import open_cluster_store
        from .cluster_partition import partitions

        async with open_cluster_store(urls[0], **options) as cluster:
            yield partitions(cluster, urls[0].partitions)
        return
    async with open_stores(urls, **options) as stores:
        yield [(u.node_name, s) for u, s in zip(urls, stores, strict=True)]
