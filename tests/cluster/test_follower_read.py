"""Follower reads on real processes: a secondary serves a read only once it holds every write acknowledged
before the read (replication/follower_reads.py), so a client reads its own writes from the secondaries."""

from __future__ import annotations

import pytest_twisted

from tests.cluster.test_replication_failover import TABLE, three_servers_with_table


@pytest_twisted.ensureDeferred
async def test_a_client_reads_its_own_writes_from_the_secondaries(onebox_factory):
    box, client = await three_servers_with_table(onebox_factory, "follower")
    writer = await client.open_table(TABLE)
    reader = await client.open_table(TABLE, follower_read=True)
    # A secondary hears of a commit only with the next prepare or group check (every second), so without the
    # primary's commit point these reads, each right after its write, would see nothing.
    for i in range(100):
        key, value = f"k{i}".encode(), f"v{i}".encode()
        await writer.set(key, b"s", value)
        assert await reader.get(key, b"s") == value, f"write {i} not seen by a follower read"
        assert await reader.multi_get(key, [b"s"]) == ({b"s": value}, True)
    assert reader.stats.follower_reads == 200 and reader.stats.retries == 0

    served = 0
    for name in box.replica_names():
        served += (await client.admin.replica_status(box.address(name)))["counters"]["follower_reads"]
    assert served == 200
    await client.close()
