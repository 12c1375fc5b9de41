"""A cluster on three hosts (network namespaces, each with its own IP address and the default ports), and a
host's cable pulled under load.

A pulled cable is not a dead process: the host's packets are dropped, so every connection to it hangs instead
of being refused, and its replica server goes on running, cut off, believing it may still serve. Its leases
must lapse before the meta server promotes anyone; the client must time out on it and find the new primaries;
when the cable is back, connections that hung for seconds must not bring stale messages back to life.
"""

from __future__ import annotations

import time

import pytest
import pytest_twisted

from pegasus_node.checker import Verdict
from pegasus_node.client import Client
from tests.cluster.netns_hosts import HostCluster, HostNetwork, netns_unavailable
from tests.cluster.test_replication_failover import create_table, fully_replicated, partitions, wait_for
from tests.cluster.workload import FailoverWorkload, sleep

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
    victim = next(cluster.replica_at(p["primary"]) for p in parts
                  if cluster.replica_at(p["primary"]).host is not cluster.network.hosts[0])
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

    missing = await workload.missing_acked_writes()
    assert missing == [], f"{len(missing)} of {len(workload.acked)} acknowledged writes lost: {missing[:5]}"
    assert len(workload.recorder.history()) > 200, "too few operations to say anything"
    result = workload.check_linearizable()
    assert result.verdict == Verdict.OK, result
    await client.close()
