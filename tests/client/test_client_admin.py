"""MetaAdmin against real servers: each method returns the reply dict of its RPC."""

from __future__ import annotations

import pytest
import pytest_twisted

from pegasus_node.client import InvalidArgumentError, MetaAdmin, TableNotFoundError
from pegasus_node.errors import ErrorCode, PegasusError


@pytest_twisted.ensureDeferred
async def test_table_admin(cluster, client) -> None:
    admin = MetaAdmin(cluster.meta_list, timeout=3.0)
    try:
        assert [a["name"] for a in (await admin.list_apps())["apps"]] == ["t"]
        created = await admin.create_app("u", partition_count=2, replica_count=2)
        assert created["app"]["name"] == "u" and created["app"]["partition_count"] == 2
        with pytest.raises(PegasusError) as info:
            await admin.create_app("u")
        assert info.value.code == ErrorCode.ERR_APP_EXIST
        config = await admin.query_config("u")
        assert [p["gpid"] for p in config["partitions"]] == [[created["app"]["app_id"], 0], [created["app"]["app_id"], 1]]
        with pytest.raises(TableNotFoundError):
            await admin.query_config("nope")
        table = await client.open_table("u")
        await table.set(b"h", b"s", b"v")
        assert await table.get(b"h", b"s") == b"v"
    finally:
        await admin.close()


@pytest_twisted.ensureDeferred
async def test_cluster_admin(cluster, client) -> None:
    admin = client.admin
    nodes = (await admin.list_nodes())["nodes"]
    assert sorted(n["address"] for n in nodes) == sorted(r.address for r in cluster.replicas)
    assert (await admin.cluster_info())["primary_meta"] == cluster.metas[0].address
    assert await admin.meta_level() == {"level": "steady", "old_level": "steady"}
    assert await admin.meta_level("freezed") == {"level": "freezed", "old_level": "steady"}
    replica = cluster.replicas[0]
    status = await admin.replica_status(replica.address)
    assert status["address"] == replica.address and len(status["replicas"]) == 4  # every node hosts all 4 partitions of t
    with pytest.raises(PegasusError) as info:
        await admin.remote_command(replica.address, "help", [])
    assert info.value.code == ErrorCode.ERR_HANDLER_NOT_FOUND  # the mini replica serves no remote commands


@pytest_twisted.ensureDeferred
async def test_admin_argument_errors(cluster, client) -> None:
    admin = client.admin
    bad = [
        lambda: admin.list_apps("sometimes"),
        lambda: admin.create_app(""),
        lambda: admin.create_app("x", partition_count=0),
        lambda: admin.create_app("x", envs={"a": 1}),
        lambda: admin.drop_app("x", reserve_seconds=-1),
        lambda: admin.recall_app("1"),
        lambda: admin.meta_level("fast"),
        lambda: admin.replica_status("nowhere"),
        lambda: admin.remote_command(cluster.replicas[0].address, "help", "not-a-list"),
    ]
    for call in bad:
        with pytest.raises(InvalidArgumentError):
            await call()
    assert cluster.metas[0].calls["create_app"] == 0
