from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_twisted

from pegasus_node.client import Client

from .mini_cluster import MiniCluster


@pytest_twisted.async_yield_fixture
async def cluster() -> AsyncIterator[MiniCluster]:
    """One meta server and three replica servers on 127.0.0.1, with a 4-partition table ``t``."""
    from twisted.internet import reactor

    mini = MiniCluster(reactor).start(metas=1, replicas=3)
    mini.create_table("t", partition_count=4, replica_count=3)
    yield mini
    await mini.stop()


@pytest_twisted.async_yield_fixture
async def client(cluster: MiniCluster) -> AsyncIterator[Client]:
    c = Client(cluster.meta_list, timeout=3.0)
    yield c
    await c.close()
