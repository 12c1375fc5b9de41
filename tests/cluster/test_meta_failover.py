"""Two meta servers sharing their state in a real ZooKeeper: kill -9 the leader under load, the other leads
from the state in ZooKeeper; the cluster then still fails over a killed replica server, and the old leader
comes back as a follower. ZooKeeper itself killed: writes stop once the leases run out, and resume when it is
back. No acknowledged write is lost and the histories are linearizable."""

from __future__ import annotations

import time

import pytest
import pytest_twisted

from pegasus_node.client import Client
from tests.cluster.test_replication_failover import TABLE, create_table, fully_replicated, partitions, wait_for
from tests.cluster.workload import FailoverWorkload, sleep
from tests.zookeeper_server import ZooKeeperServer, zookeeper_unavailable

pytestmark = pytest.mark.skipif(bool(zookeeper_unavailable()), reason=f"no ZooKeeper: {zookeeper_unavailable()}")


@pytest_twisted.ensureDeferred
async def test_kill9_the_leading_meta_server_then_a_replica_server(onebox_factory, zookeeper):
    box = onebox_factory("ha", replicas=3, extra_args=["--metas", "2", "--zookeeper", zookeeper.hosts])
    metas = {box.address(name): name for name in ("meta1", "meta2")}
    client = Client(box.meta, timeout=10.0)
    await create_table(client)
    table = await client.open_table(TABLE)
    followers = await client.open_table(TABLE, follower_read=True)
    workload = FailoverWorkload(table, workers=8, seed=4, follower_table=followers)
    workload.start()
    await sleep(1.5)

    leader = (await client.admin.cluster_info())["primary_meta"]
    assert leader in metas
    killed_at = time.monotonic()
    box.kill9(metas[leader])

    async def other_leads():
        info = await client.admin.cluster_info(timeout=2.0)
        return info["primary_meta"] != leader and info["alive_node_count"] == 3 and info

    await wait_for(other_leads, 40, "the other meta server to lead")
    await sleep(2.0)
    assert workload.acks_between(killed_at + 0.1, time.monotonic()) > 0, f"no write after; {workload.errors}"

    # The new leader knows the table from ZooKeeper, and fails over a replica server as the old one would.
    before = await partitions(client)
    victim_address = before[0]["primary"]
    victim = next(name for name in box.replica_names() if box.address(name) == victim_address)
    box.kill9(victim)

    async def promoted():
        parts = await partitions(client)
        return all(p["primary"] and p["primary"] != victim_address for p in parts) and parts

    await wait_for(promoted, 40, "new primaries for the partitions of the killed replica server")

    # The old leader returns as a follower: it refuses meta calls, saying who to ask.
    box.restart(metas[leader])
    info = (await client.admin.remote_command(leader, "server-info"))["output"]
    assert info["leading"] is False, info
    box.restart(victim)

    async def healed():
        parts = await partitions(client)
        return fully_replicated(parts) and all(victim_address in {p["primary"], *p["secondaries"]} for p in parts)

    await wait_for(healed, 90, "the restarted replica server to rejoin every partition")
    await workload.stop()

    await workload.assert_nothing_lost_and_linearizable()
    await client.close()


@pytest_twisted.ensureDeferred
async def test_zookeeper_killed_and_restarted_writes_stop_then_resume(onebox_factory, tmp_path):
    # A ZooKeeper of this test's own: it is killed.
    zookeeper = ZooKeeperServer(tmp_path / "zookeeper", tick_ms=500).start()
    try:
        box = onebox_factory("zk_down", replicas=3, extra_args=["--metas", "2", "--zookeeper", zookeeper.hosts])
        client = Client(box.meta, timeout=10.0)
        await create_table(client)
        table = await client.open_table(TABLE)
        workload = FailoverWorkload(table, workers=8, seed=5)
        workload.start()
        await sleep(1.0)

        # Without ZooKeeper no meta server may lead, so none acknowledges a beacon: once the leases (4 s) run out,
        # no primary serves.
        zookeeper.kill9()
        killed_at = time.monotonic()
        await sleep(7.0)
        assert workload.acks_between(killed_at + 5.0, time.monotonic()) == 0, "a primary served without a lease"

        zookeeper.start()
        back_at = time.monotonic()

        async def writes_resumed():
            return workload.acks_between(back_at, time.monotonic()) > 20

        await wait_for(writes_resumed, 40, "writes to resume once ZooKeeper is back")
        await workload.stop()
        await workload.assert_nothing_lost_and_linearizable(min_operations=50)
        await client.close()
    finally:
        zookeeper.stop()
