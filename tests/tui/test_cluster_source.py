"""ClusterSource against a real onebox: every field it reads, ops/s from real writes, a killed replica server
(silent within one refresh, unalive after grace, its partitions reconfigured with new primaries and ballots,
or left without a primary when they had one replica), its return as a learner then a secondary, and a dead
meta server (said, with the last tables kept)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import pytest_twisted

from pegasus_node.client.admin import MetaAdmin
from pegasus_node.client.client import Client
from pegasus_shell.connection import wait
from pegasus_shell.health import HEALTHY, READ_UNHEALTHY
from pegasus_shell.tui.model import ALIVE, NO_ANSWER, ROLE_META, ROLE_REPLICA, UNALIVE, ANSWERS, Snapshot
from pegasus_shell.tui.source import ClusterSource
from tests.cluster.onebox_harness import Onebox
from tests.tui.scripted import on_loop

GRACE = 2.0
FAST_FAILURE_DETECTION = ["--beacon-interval", "0.3", "--lease", "1.5", "--grace", str(GRACE)]
POLL_TIMEOUT = 2.0  # generous: other test suites may load this machine; a killed server is refused at once


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    onebox = Onebox(tmp_path_factory.mktemp("tui_source") / "box", replicas=3, extra_args=FAST_FAILURE_DETECTION)
    try:
        onebox.start()
        yield onebox
    finally:
        onebox.stop()


async def poll_until(source: ClusterSource, condition, timeout: float) -> Snapshot:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        snapshot = await source.poll("temp")
        if condition(snapshot):
            return snapshot
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout} s; last snapshot: {snapshot}")
        await asyncio.sleep(0.2)


@pytest_twisted.ensureDeferred
async def test_cluster_source_follows_a_real_cluster(box):
    await on_loop(follow_a_real_cluster(box))


async def follow_a_real_cluster(box: Onebox) -> None:
    admin = MetaAdmin(box.meta)
    source = ClusterSource(admin, timeout=POLL_TIMEOUT)
    try:
        await first_refresh(source, box)
        await ops_come_from_real_writes(source, box)
        await a_killed_replica_server(source, box)
        await a_hung_replica_server(source, box)
        await a_dead_meta_server(source, box)
    finally:
        await wait(admin.close())


async def first_refresh(source: ClusterSource, box: Onebox) -> None:
    s = await poll_until(source, lambda s: s.alive_replica_count == 3 and s.tables and all(
        p.health == HEALTHY for p in s.partitions), 15)
    assert s.error is None and s.meta_address == box.meta and s.meta_level == "steady"
    meta = s.node(box.meta)
    assert meta is not None and meta.role == ROLE_META and meta.leader and meta.status == ALIVE
    replicas = [n for n in s.nodes if n.role == ROLE_REPLICA]
    assert sorted(n.address for n in replicas) == sorted(box.address(r) for r in box.replica_names())
    for n in replicas:
        assert n.status == ALIVE and n.reachable
        assert 0 <= n.lease_remaining_ms <= 1500 and n.last_beacon_age_ms >= 0  # lease 1.5 s
    (table,) = s.tables
    copies = table.replica_count
    assert sum(n.primary_count for n in replicas) == 8 and sum(n.secondary_count for n in replicas) == 8 * (copies - 1)
    assert (table.name, table.partition_count, table.fully_healthy, table.unhealthy) == ("temp", 8, 8, 0)
    assert s.selected_table == "temp" and [p.gpid for p in s.partitions] == [(table.app_id, i) for i in range(8)]
    for p in s.partitions:
        assert p.health == HEALTHY and p.ballot >= 1 and p.primary in {n.address for n in replicas}
        assert len(p.secondaries) == copies - 1 and p.primary not in p.secondaries
        # the primary's own report: decrees, prepared-but-uncommitted and queued writes, its lease
        for field in (p.last_committed_decree, p.last_prepared_decree, p.pending_mutations, p.queued_writes,
                      p.primary_lease_remaining_ms):
            assert isinstance(field, int), p
        assert p.last_prepared_decree >= p.last_committed_decree
    kinds = [e.kind for e in s.events]
    assert "table_created" in kinds and kinds.count("node_alive") >= 3
    assert [e.seq for e in s.events] == sorted((e.seq for e in s.events), reverse=True)
    again = await source.poll("temp")
    assert [e.seq for e in again.events][-len(s.events):] == [e.seq for e in s.events]  # fetched once, kept
    assert again.refresh == s.refresh + 1


async def ops_come_from_real_writes(source: ClusterSource, box: Onebox) -> None:
    client = Client(box.meta)
    try:
        table = await wait(client.open_table("temp"))
        await source.poll("temp")
        for i in range(60):
            await wait(table.set(f"hk{i}", "sk", "v"))
        s = await source.poll("temp")
    finally:
        await wait(client.close())
    rates = [n.ops_per_second for n in s.nodes if n.role == ROLE_REPLICA]
    assert all(r is not None for r in rates) and sum(rates) > 0
    assert any(n.ops_history and n.ops_history[-1] > 0 for n in s.nodes)
    assert sum(p.last_committed_decree for p in s.partitions) > 0


async def a_killed_replica_server(source: ClusterSource, box: Onebox) -> None:
    victim = box.replica_names()[0]
    address = box.address(victim)
    before = {p.gpid: p for p in (await source.poll("temp")).partitions}
    copies = (await source.poll("temp")).tables[0].replica_count
    await asyncio.to_thread(box.kill9, victim)
    s = await source.poll("temp")  # the very next refresh says it no longer answers
    node = s.node(address)
    assert not node.reachable and node.status in (NO_ANSWER, UNALIVE) and node.ops_per_second is None

    s = await poll_until(source, lambda s: s.node(address).status == UNALIVE, GRACE + 3)
    assert s.alive_replica_count == 2
    # the meta server's periodic check records the event just after the grace period
    await poll_until(source, lambda s: any(e.kind == "node_dead" and address in e.message for e in s.events), 3)
    held = {g for g, p in before.items() if address == p.primary or address in p.secondaries}
    if copies == 1:  # nobody else holds these partitions: no primary serves them until the server is back
        s = await poll_until(source, lambda s: all(p.health == READ_UNHEALTHY for p in s.partitions
                                                   if p.gpid in held), 3)
        assert all(p.primary_lease_remaining_ms is None for p in s.partitions if p.gpid in held)
        assert s.tables[0].read_unhealthy == len(held)
    else:  # PacificA: the others carry on, with new primaries where it led, and a new ballot for each
        s = await poll_until(source, lambda s: all(address not in (p.primary, *p.secondaries, *p.learners)
                                                   for p in s.partitions), GRACE + 5)
        for p in s.partitions:
            assert p.primary and p.primary != address
            if p.gpid in held:
                assert p.ballot > before[p.gpid].ballot and p.health != HEALTHY
        assert any(e.kind == "config_changed" and "promote" in e.message for e in s.events)

    last_seq = max(e.seq for e in (await source.poll("temp")).events)
    await asyncio.to_thread(box.restart, victim)
    s = await poll_until(source, lambda s: s.node(address).status == ALIVE, 10)
    s = await poll_until(source, lambda s: all(p.health == HEALTHY for p in s.partitions), 30)
    assert s.tables[0].fully_healthy == 8
    if copies > 1:  # back as a learner first, then upgraded to secondary
        assert all(address in (p.primary, *p.secondaries) for p in s.partitions)
        since = [e for e in s.events if e.seq > last_seq and e.kind == "config_changed"]
        upgraded = [e.seq for e in since if f"upgrade learner {address}" in e.message]
        learned = [e.seq for e in since if f"add learner {address}" in e.message]
        assert upgraded and learned and min(learned) < min(upgraded), since


async def a_hung_replica_server(source: ClusterSource, box: Onebox) -> None:
    """A server that accepts nothing but does not refuse either (SIGSTOP): its call times out within the poll."""
    name = box.replica_names()[1]
    pid, address = box.process(name)["pid"], box.address(name)
    os.kill(pid, signal.SIGSTOP)
    try:
        s = await source.poll("temp")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert not s.node(address).reachable and s.node(address).status in (NO_ANSWER, UNALIVE)
    assert all(n.reachable for n in s.nodes if n.address != address)
    await poll_until(source, lambda s: s.node(address).status == ALIVE, 10)


async def a_dead_meta_server(source: ClusterSource, box: Onebox) -> None:
    before = await source.poll("temp")
    await asyncio.to_thread(box.kill9, "meta")
    s = await source.poll("temp")
    assert s.error is not None and s.error.startswith("meta server:")
    assert s.stale_since == before.taken_at and s.tables == before.tables and s.partitions == before.partitions
    assert s.node(box.meta).status == NO_ANSWER
    assert {n.status for n in s.nodes if n.role == ROLE_REPLICA} == {ANSWERS}  # asked directly
