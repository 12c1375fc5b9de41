"""A cluster on three hosts (network namespaces, each with its own IP address and the default ports), and a
host's cable pulled under load; and two meta servers whose leader loses ZooKeeper but nothing else.

A pulled cable is not a dead process: the host's packets are dropped, so every connection to it hangs instead
of being refused, and its replica server goes on running, cut off, believing it may still serve. Its leases
must lapse before the meta server promotes anyone; the client must time out on it and find the new primaries;
when the cable is back, connections that hung for seconds must not bring stale messages back to life.
"""

from __future__ import annotations

import time

import pytest
import pytest_twisted

from pegasus_node.client import Client
from tests.cluster.netns_hosts import HostCluster, HostNetwork, netns_unavailable
from tests.cluster.test_replication_failover import create_table, fully_replicated, partitions, wait_for
from tests.cluster.workload import FailoverWorkload, sleep
from tests.zookeeper_server import ZooKeeperServer, zookeeper_unavailable

UNAVAILABLE = netns_unavailable()
pytestmark = pytest.mark.skipif(bool(UNAVAILABLE), reason=f"no test hosts here: {UNAVAILABLE}")


@pytest.fixture
def three_hosts(tmp_path):
    network = HostNetwork(3).create()
    cluster = HostCluster(network, tmp_path)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        network.close()


@pytest_twisted.ensureDeferred
async def test_a_host_cut_off_under_load_loses_its_partitions_then_rejoins(three_hosts):
    cluster = three_hosts
    client = Client(cluster.meta_address, timeout=10.0)

    async def all_alive():
        nodes = (await client.admin.list_nodes())["nodes"]
        return {n["address"] for n in nodes if n["status"] == "alive"} == servers

    servers = {node.address for node in cluster.replicas()}
    await wait_for(all_alive, 30, "the meta server to hear from the three hosts' replica servers")
    await create_table(client)
    parts = await partitions(client)
    assert {p["primary"] for p in parts} <= servers, "a primary is not one of the three hosts' servers"
    assert len({address.split(":")[1] for address in servers}) == 1, "the hosts should share the default port"

    table = await client.open_table("failover")
    followers = await client.open_table("failover", follower_read=True)
    workload = FailoverWorkload(table, workers=8, seed=3, follower_table=followers)
    workload.start()
    await sleep(2.0)

    # Cut off a host holding a primary, but not the meta server's host: the meta server must see it go.
    victim = next(cluster.node_at(p["primary"]) for p in parts
                  if cluster.node_at(p["primary"]).host is not cluster.network.hosts[0])
    cut_at = time.monotonic()
    cluster.network.cut(victim.host)

    async def moved_off():
        now = await partitions(client)
        return all(p["primary"] and p["primary"] != victim.address and victim.address not in p["secondaries"]
                   for p in now) and now

    await wait_for(moved_off, 40, f"every partition to move off the cut-off host {victim.address}")
    await sleep(3.0)
    assert workload.acks_between(cut_at + 0.1, time.monotonic()) > 0, f"writes stopped; errors {workload.errors}"
    assert victim.process.poll() is None, "the cut-off server should still be running"

    cluster.network.heal(victim.host)

    async def rejoined():
        now = await partitions(client)
        return fully_replicated(now) and all(victim.address in {p["primary"], *p["secondaries"]} for p in now)

    await wait_for(rejoined, 120, f"{victim.address} to rejoin every partition once its cable is back")
    await sleep(1.0)
    await workload.stop()

    await workload.assert_nothing_lost_and_linearizable()
    await client.close()


@pytest.fixture
def hosts_with_zookeeper(tmp_path):
    """Four hosts: meta servers on the first two, replica servers on the first three, ZooKeeper on the fourth."""
    why = zookeeper_unavailable()
    if why:
        pytest.skip(f"no ZooKeeper: {why}")
    network = HostNetwork(4).create()
    zk_host = network.hosts[3]
    zookeeper = ZooKeeperServer(tmp_path / "zookeeper", tick_ms=500, address=zk_host.address, netns=zk_host.name)
    cluster = HostCluster(network, tmp_path, meta_hosts=(0, 1), replica_hosts=(0, 1, 2), zookeeper=zookeeper.hosts)
    try:
        zookeeper.start()
        yield cluster.start()
    finally:
        cluster.stop()
        zookeeper.stop()
        network.close()


@pytest_twisted.ensureDeferred
async def test_a_meta_leader_cut_off_from_zookeeper_alone_stops_leading(hosts_with_zookeeper):
    """The leader still reaches every replica server, and they it: the dangerous case. It must stop answering
    beacons before ZooKeeper lets the other meta server lead, or a primary could keep its lease from the old
    leader while the new one appoints another. The linearizability check would see two primaries serving."""
    cluster = hosts_with_zookeeper
    client = Client(cluster.meta_address, timeout=10.0)
    servers = {node.address for node in cluster.replicas()}

    async def all_alive():
        nodes = (await client.admin.list_nodes())["nodes"]
        return {n["address"] for n in nodes if n["status"] == "alive"} == servers

    await wait_for(all_alive, 60, "a meta server to lead and hear from the three replica servers")
    await create_table(client)
    table = await client.open_table("failover")
    workload = FailoverWorkload(table, workers=8, seed=6)
    workload.start()
    await sleep(1.5)

    leader = cluster.node_at((await client.admin.cluster_info())["primary_meta"])
    zk_host = cluster.network.hosts[3]
    cut_at = time.monotonic()
    cluster.network.cut_between(leader.host, zk_host)

    async def other_leads():
        info = await client.admin.cluster_info(timeout=2.0)
        return info["primary_meta"] != leader.address and info

    await wait_for(other_leads, 40, "the other meta server to lead")
    info = (await client.admin.remote_command(leader.address, "server-info"))["output"]
    assert info["leading"] is False, "the cut-off meta server still says it leads"
    await sleep(2.0)
    assert workload.acks_between(cut_at + 0.1, time.monotonic()) > 0, f"writes stopped; errors {workload.errors}"

    cluster.network.heal_between(leader.host, zk_host)
    await sleep(3.0)
    info = (await client.admin.remote_command(leader.address, "server-info"))["output"]
    assert info["leading"] is False, "the old leader must come back as a follower"
    await workload.stop()
    await workload.assert_nothing_lost_and_linearizable()
    await client.close()
