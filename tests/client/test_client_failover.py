"""Refresh and retry against real servers: moved primaries, missing primaries, dead servers, meta
leadership, ambiguous failures of non-idempotent writes, backup requests and follower reads."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from pegasus_node.base.keys import partition_index
from pegasus_node.client import (
    AmbiguousResultError,
    Client,
    InvalidArgumentError,
    PegasusTimeoutError,
    TableNotFoundError,
)
from pegasus_node.errors import ErrorCode
from pegasus_node.twisted_rpc import DROP, delay

from .mini_cluster import MiniCluster


def _key_in(partition: int, count: int = 4) -> bytes:
    return next(b"key%d" % i for i in range(1000) if partition_index(b"key%d" % i, count) == partition)


def _primary(cluster: MiniCluster, partition: int):
    return cluster.replica(cluster.apps["t"].partitions[partition].primary)


@pytest_twisted.ensureDeferred
async def test_meta_failover_skips_followers_and_dead_servers() -> None:
    mini = MiniCluster(reactor).start(metas=3, replicas=3)
    mini.create_table("t")
    follower, dead, leader = mini.metas
    follower.leader = False
    await dead.server.stop()
    c = Client(mini.meta_list, timeout=3.0)
    try:
        table = await c.open_table("t")
        assert await table.get(b"h", b"s") is None
        assert c.meta.leader_hint == leader.address
        assert follower.calls["query_config"] == 1
        await c.open_table("t")  # the session now starts at the leader
        assert follower.calls["query_config"] == 1 and leader.calls["query_config"] == 2
        leader.leader, follower.leader = False, True  # leadership moves back
        admin = c.admin
        assert (await admin.list_apps())["apps"][0]["name"] == "t"
        assert c.meta.leader_hint == follower.address
    finally:
        await c.close()
        await mini.stop()


@pytest_twisted.ensureDeferred
async def test_no_meta_leader_times_out_with_the_last_error(cluster) -> None:
    cluster.metas[0].leader = False
    c = Client(cluster.meta_list, timeout=0.4)
    with pytest.raises(PegasusTimeoutError, match="is not the leader") as info:
        await c.open_table("t")
    assert info.value.code == ErrorCode.ERR_TIMEOUT
    await c.close()


@pytest_twisted.ensureDeferred
async def test_moved_primaries_cost_one_coalesced_refresh(cluster, client) -> None:
    table = await client.open_table("t")
    keys = [_key_in(p) for p in range(4)]
    for k in keys:  # warm up the connections
        await table.set(k, b"s", b"before")
    cache_queries = table._invoker.cache.queries
    meta_queries = cluster.metas[0].calls["query_config"]
    for p in range(4):
        part = cluster.apps["t"].partitions[p]
        cluster.move_primary("t", p, part.secondaries[0])
    writes = [table.set(k, b"s%d" % j, b"after") for k in keys for j in range(10)]
    for d in writes:
        await d
    assert table._invoker.cache.queries - cache_queries == 1
    assert cluster.metas[0].calls["query_config"] - meta_queries == 1
    assert table.stats.retries >= 40
    for k in keys:
        assert await table.get(k, b"s9") == b"after"


@pytest_twisted.ensureDeferred
async def test_waits_for_a_primary_within_the_deadline(cluster, client) -> None:
    table = await client.open_table("t")
    key = _key_in(2)
    old = cluster.clear_primary("t", 2)
    reactor.callLater(0.3, cluster.move_primary, "t", 2, old)
    await table.set(key, b"s", b"v")
    assert await table.get(key, b"s") == b"v"
    assert table.stats.retries > 0


@pytest_twisted.ensureDeferred
async def test_deadline_without_a_primary(cluster, client) -> None:
    table = await client.open_table("t")
    cluster.clear_primary("t", 1)
    with pytest.raises(PegasusTimeoutError, match="has no primary") as info:
        await table.set(_key_in(1), b"s", b"v", timeout=0.3)
    assert info.value.code == ErrorCode.ERR_TIMEOUT
    # nothing was sent, so a non-idempotent write gets a plain timeout too
    with pytest.raises(PegasusTimeoutError):
        await table.incr(_key_in(1), b"n", timeout=0.3)


@pytest_twisted.ensureDeferred
async def test_idempotent_write_is_retried_after_an_ambiguous_failure(cluster, client) -> None:
    table = await client.open_table("t")
    primary = _primary(cluster, 0)
    primary.fail_after["put"].append(ErrorCode.ERR_NOT_ENOUGH_MEMBER)
    await table.set(_key_in(0), b"s", b"v")
    assert primary.calls["put"] == 2
    assert await table.get(_key_in(0), b"s") == b"v"


@pytest_twisted.ensureDeferred
async def test_a_get_whose_first_attempt_fails_returns_the_value_of_the_retry(cluster, client) -> None:
    table = await client.open_table("t")
    await table.set(_key_in(3), b"s", b"v")
    primary = _primary(cluster, 3)
    gets, puts = primary.calls["get"], primary.calls["put"]
    primary.fail_before["get"].append(ErrorCode.ERR_BUSY)
    assert await table.get(_key_in(3), b"s") == b"v"
    primary.fail_before["get"].append(ErrorCode.ERR_BUSY)
    assert await table.get(_key_in(3), b"absent") is None
    primary.fail_before["put"].append(ErrorCode.ERR_BUSY)
    assert await table.set(_key_in(3), b"s", b"w") is None
    assert (primary.calls["get"] - gets, primary.calls["put"] - puts) == (4, 2)
    assert await table.get(_key_in(3), b"s") == b"w"


@pytest_twisted.ensureDeferred
async def test_an_operation_whose_deadline_has_passed_sends_nothing(cluster, client) -> None:
    table = await client.open_table("t")
    sent_before = sum(sum(r.calls.values()) for r in cluster.replicas)
    # 1 ns is below the resolution of the reactor's clock, so the deadline has passed when it is checked.
    with pytest.raises(PegasusTimeoutError, match="did not succeed within"):
        await table.get(_key_in(0), b"s", timeout=1e-9)
    with pytest.raises(PegasusTimeoutError, match="did not succeed within"):
        await table.set(_key_in(0), b"s", b"v", timeout=1e-9)
    assert sum(sum(r.calls.values()) for r in cluster.replicas) == sent_before


@pytest_twisted.ensureDeferred
async def test_a_silent_replica_does_not_use_up_the_whole_deadline(cluster, client) -> None:
    table = await client.open_table("t")
    primary = _primary(cluster, 0)
    primary.faults.actions["rrdb.put"] = [DROP]  # the first reply is lost
    meta_queries = cluster.metas[0].calls["query_config"]
    await table.set(_key_in(0), b"s", b"v", timeout=2.5)  # attempts of at most 1.25 s
    assert primary.calls["put"] == 2
    assert cluster.metas[0].calls["query_config"] == meta_queries + 1  # silence: ask the meta server again


@pytest_twisted.ensureDeferred
async def test_incr_is_not_retried_after_an_ambiguous_failure(cluster, client) -> None:
    table = await client.open_table("t")
    key = _key_in(3)
    primary = _primary(cluster, 3)
    primary.fail_after["incr"].append(ErrorCode.ERR_NOT_ENOUGH_MEMBER)
    with pytest.raises(AmbiguousResultError, match="may or may not have been applied") as info:
        await table.incr(key, b"n")
    assert info.value.code == ErrorCode.ERR_NOT_ENOUGH_MEMBER
    assert primary.calls["incr"] == 1
    assert await table.get(key, b"n") == b"1"  # it was applied, once


@pytest_twisted.ensureDeferred
async def test_check_and_set_whose_reply_is_lost_is_an_ambiguous_timeout(cluster, client) -> None:
    table = await client.open_table("t")
    key = _key_in(1)
    primary = _primary(cluster, 1)
    primary.faults.actions["rrdb.check_and_set"] = DROP
    with pytest.raises(AmbiguousResultError) as info:
        await table.check_and_set(key, b"c", 0, b"", b"c", b"x", timeout=0.3)
    assert info.value.code == ErrorCode.ERR_TIMEOUT
    assert primary.calls["check_and_set"] == 1
    assert await table.get(key, b"c") == b"x"


@pytest_twisted.ensureDeferred
async def test_incr_is_retried_when_it_certainly_did_not_run(cluster, client) -> None:
    table = await client.open_table("t")
    key = _key_in(0)
    primary = _primary(cluster, 0)
    primary.fail_before["incr"].extend([ErrorCode.ERR_BUSY, ErrorCode.ERR_INVALID_STATE])
    assert await table.incr(key, b"n", 5) == 5
    assert primary.calls["incr"] == 3


@pytest_twisted.ensureDeferred
async def test_dead_primary_then_new_primary(cluster) -> None:
    key = _key_in(2)
    dead = _primary(cluster, 2)
    await dead.server.stop()
    # A client with no connection yet: connecting fails, so even incr is known not to have run.
    c = Client(cluster.meta_list, timeout=3.0)
    table = await c.open_table("t")
    reactor.callLater(0.2, cluster.move_primary, "t", 2, cluster.apps["t"].partitions[2].secondaries[0])
    assert await table.incr(key, b"n") == 1
    await table.set(key, b"s", b"v")
    assert await table.get(key, b"s") == b"v"
    await c.close()


@pytest_twisted.ensureDeferred
async def test_dropped_table_surfaces_as_table_not_found(cluster, client) -> None:
    table = await client.open_table("t")
    await table.set(b"h", b"s", b"v")
    del cluster.apps["t"]
    with pytest.raises(TableNotFoundError):
        await table.get(b"h", b"s")


@pytest_twisted.ensureDeferred
async def test_backup_request_answers_from_a_secondary(cluster, client) -> None:
    key = _key_in(1)
    plain = await client.open_table("t")
    await plain.set(key, b"s", b"v")
    await plain.multi_set(key, {b"a": b"1", b"b": b"2"})
    _primary(cluster, 1).faults.actions.update({"rrdb.get": delay(5.0), "rrdb.scan": delay(5.0)})

    with pytest.raises(PegasusTimeoutError):
        await plain.get(key, b"s", timeout=0.3)
    assert plain.stats.backup_requests == 0

    table = await client.open_table("t", backup_request_delay_ms=30)
    assert table.backup_request_delay_ms == 30
    assert await table.get(key, b"s") == b"v"
    assert table.stats.backup_requests == 1
    assert sum(r.backup_reads for r in cluster.replicas) == 1
    records, complete = await table.hash_scan(key)
    assert [sk for _, sk, _ in records] == [b"a", b"b", b"s"] and complete
    assert table.stats.backup_requests == 2


@pytest_twisted.ensureDeferred
async def test_writes_never_use_backup_requests(cluster, client) -> None:
    key = _key_in(0)
    table = await client.open_table("t", backup_request_delay_ms=10)
    _primary(cluster, 0).faults.actions["rrdb.put"] = delay(0.2)
    await table.set(key, b"s", b"v")
    assert table.stats.backup_requests == 0
    assert sum(r.backup_reads for r in cluster.replicas) == 0


@pytest_twisted.ensureDeferred
async def test_follower_reads_go_to_secondaries_and_writes_to_the_primary(cluster, client) -> None:
    key = _key_in(1)
    table = await client.open_table("t", follower_read=True)
    await table.set(key, b"s", b"v")
    await table.multi_set(key, {b"a": b"1"})
    assert await table.get(key, b"s") == b"v"
    assert await table.exist(key, b"a")
    assert await table.sortkey_count(key) == 2
    records, complete = await table.hash_scan(key)
    assert [sk for _, sk, _ in records] == [b"a", b"s"] and complete
    primary = _primary(cluster, 1)
    assert primary.calls["put"] == 1 and primary.calls["get"] == 0 and primary.calls["scan"] == 0
    assert sum(r.follower_reads for r in cluster.replicas) == 4
    assert table.stats.follower_reads == 4 and table.stats.retries == 0


@pytest_twisted.ensureDeferred
async def test_a_follower_read_the_secondary_refuses_is_retried_at_the_primary(cluster, client) -> None:
    key = _key_in(2)
    table = await client.open_table("t", follower_read=True)
    await table.set(key, b"s", b"v")
    for replica in cluster.replicas:
        if replica is not _primary(cluster, 2):
            replica.fail_before["get"].append(ErrorCode.ERR_INVALID_STATE)
    assert await table.get(key, b"s") == b"v"
    assert table.stats.follower_reads == 1 and table.stats.retries == 1
    assert _primary(cluster, 2).calls["get"] == 1


@pytest_twisted.ensureDeferred
async def test_follower_read_must_be_a_bool(client) -> None:
    with pytest.raises(InvalidArgumentError):
        await client.open_table("t", follower_read="yes")
