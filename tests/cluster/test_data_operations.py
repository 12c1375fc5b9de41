"""Every data operation through the real client against a real onebox (separate processes, loopback)."""

from __future__ import annotations

import time

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from pegasus_node.client import (
    CheckType,
    Client,
    InvalidKeyError,
    PegasusError,
    TableNotFoundError,
    ValueTooLargeError,
)
from pegasus_node.errors import ErrorCode


def sleep(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


@pytest.fixture
def client(shared_onebox):
    c = Client(shared_onebox.meta, timeout=10.0)
    yield c
    pytest_twisted.blockon(c.close())


@pytest_twisted.ensureDeferred
async def test_set_get_del_exist_ttl(client):
    table = await client.open_table("temp")
    assert await table.get(b"h1", b"s1") is None
    await table.set(b"h1", b"s1", b"v1")
    await table.set("h1", "s2", "v2 with spaces", ttl_seconds=100)
    assert await table.get(b"h1", b"s1") == b"v1"
    assert await table.get(b"h1", b"s2") == b"v2 with spaces"
    assert await table.exist(b"h1", b"s1") is True
    assert await table.ttl(b"h1", b"s1") == -1
    assert 95 <= await table.ttl(b"h1", b"s2") <= 100
    assert await table.ttl(b"h1", b"nope") is None
    await table.delete(b"h1", b"s1")
    assert await table.get(b"h1", b"s1") is None
    assert await table.exist(b"h1", b"s1") is False


@pytest_twisted.ensureDeferred
async def test_ttl_expires_on_read(client):
    table = await client.open_table("temp")
    await table.set(b"ttl", b"short", b"x", ttl_seconds=1)
    assert await table.get(b"ttl", b"short") == b"x"
    await sleep(2.1)
    assert await table.get(b"ttl", b"short") is None
    assert await table.exist(b"ttl", b"short") is False


@pytest_twisted.ensureDeferred
async def test_multi_ops_and_count(client):
    table = await client.open_table("temp")
    await table.multi_set(b"m", {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"})
    assert await table.sortkey_count(b"m") == 4
    kvs, complete = await table.multi_get(b"m", [b"a", b"c", b"zz"])
    assert dict(kvs) == {b"a": b"1", b"c": b"3"} and complete
    kvs, complete = await table.multi_get(b"m")
    assert dict(kvs) == {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"}
    kvs, complete = await table.multi_get(b"m", start_sort_key=b"b", stop_sort_key=b"d")
    assert list(kvs) == [b"b", b"c"]
    kvs, complete = await table.multi_get(b"m", max_kv_count=2)
    assert len(kvs) == 2 and not complete
    assert await table.multi_delete(b"m", [b"a", b"b", b"nope"]) == 2
    assert await table.sortkey_count(b"m") == 2


@pytest_twisted.ensureDeferred
async def test_incr(client):
    table = await client.open_table("temp")
    assert await table.incr(b"counter", b"c") == 1
    assert await table.incr(b"counter", b"c", 41) == 42
    assert await table.incr(b"counter", b"c", -2) == 40
    assert await table.get(b"counter", b"c") == b"40"
    await table.set(b"counter", b"text", b"not a number")
    with pytest.raises(PegasusError) as info:
        await table.incr(b"counter", b"text")
    assert info.value.code == ErrorCode.ERR_INVALID_PARAMETERS


@pytest_twisted.ensureDeferred
async def test_check_and_set(client):
    table = await client.open_table("temp")
    result = await table.check_and_set(b"cas", b"k", CheckType.CT_VALUE_NOT_EXIST, b"", b"k", b"first")
    assert result.set_succeed
    result = await table.check_and_set(b"cas", b"k", CheckType.CT_VALUE_NOT_EXIST, b"", b"k", b"second",
                                       return_check_value=True)
    assert not result.set_succeed and result.check_value_exist and result.check_value == b"first"
    result = await table.check_and_set(b"cas", b"k", CheckType.CT_VALUE_BYTES_EQUAL, b"first", b"other", b"x")
    assert result.set_succeed
    assert await table.get(b"cas", b"other") == b"x"
    assert await table.get(b"cas", b"k") == b"first"


@pytest_twisted.ensureDeferred
async def test_hash_scan_and_full_scan(client):
    admin = client.admin
    await admin.create_app("scan_t", partition_count=4, replica_count=1)
    table = await client.open_table("scan_t")
    for h in range(10):
        await table.multi_set(f"h{h}", {f"s{s:02d}": f"v{h}.{s}" for s in range(15)})
    records, complete = await table.hash_scan(b"h3", b"s05", b"s10")
    assert complete
    assert [sk for _, sk, _ in records] == [f"s{s:02d}".encode() for s in range(5, 10)]
    scanner = table.get_scanner(b"h4", batch_size=4)
    seen = []
    while batch := await scanner.next_batch():
        assert len(batch) <= 4
        seen.extend(batch)
    assert len(seen) == 15
    everything = []
    for scanner in table.get_unordered_scanners(3, batch_size=7):
        while batch := await scanner.next_batch():
            everything.extend(batch)
    assert len(everything) == 150
    assert {hk for hk, _, _ in everything} == {f"h{h}".encode() for h in range(10)}
    records, complete = await table.full_scan(max_count=100)
    assert len(records) == 100 and not complete
    await admin.drop_app("scan_t")


@pytest_twisted.ensureDeferred
async def test_bad_input_is_refused_clearly(client):
    with pytest.raises(TableNotFoundError):
        await client.open_table("no_such_table")
    table = await client.open_table("temp")
    with pytest.raises(InvalidKeyError):
        await table.set(b"", b"s", b"v")
    with pytest.raises(ValueTooLargeError):
        await table.set(b"h", b"s", b"x" * (table.max_value_bytes + 1))


@pytest_twisted.ensureDeferred
async def test_server_rejects_wrong_bodies_and_keeps_serving(client, shared_onebox):
    """Straight to a replica server, past the client's checks: typed errors, and the node keeps serving."""
    pool = client.pool
    config = await pool.call(shared_onebox.meta, "meta.query_config", {"app_name": "temp"}, 5.0)
    part = config["partitions"][0]
    for body, code in [
        ({"gpid": part["gpid"], "hash_key": "str-not-bytes", "sort_key": b"s"}, ErrorCode.ERR_INVALID_PARAMETERS),
        ({"gpid": "x", "hash_key": b"h", "sort_key": b"s"}, ErrorCode.ERR_INVALID_PARAMETERS),
        ({"gpid": [999, 0], "hash_key": b"h", "sort_key": b"s"}, ErrorCode.ERR_OBJECT_NOT_FOUND),
        ([1, 2, 3], ErrorCode.ERR_INVALID_PARAMETERS),
    ]:
        with pytest.raises(PegasusError) as info:
            await pool.call(part["primary"], "rrdb.get", body, 5.0)
        assert info.value.code == code, body
    tag = 1 << 20
    for op, code in [  # writes another cluster's duplication would ship, malformed
        ({"op": "incr", "hk": b"h", "sk": b"s", "by": 1, "timetag": tag}, ErrorCode.ERR_INVALID_PARAMETERS),
        ({"op": "put", "hk": b"h", "sk": b"s", "v": b"v", "expire": 0}, ErrorCode.ERR_INVALID_PARAMETERS),
        ({"op": "multi_put", "hk": b"h", "kvs": 7, "expire": 0, "timetag": tag}, ErrorCode.ERR_INVALID_PARAMETERS),
        ({"op": "multi_put", "hk": b"h", "kvs": [5, [b"s"]], "expire": 0, "timetag": tag},
         ErrorCode.ERR_INVALID_PARAMETERS),
    ]:
        with pytest.raises(PegasusError) as info:
            await pool.call(part["primary"], "rrdb.duplicate", {"gpid": part["gpid"], "hash_key": b"h", "ops": [op]},
                            5.0)
        assert info.value.code == code, (op, info.value)
    with pytest.raises(PegasusError) as info:
        await pool.call(part["primary"], "rrdb.no_such_method", {}, 5.0)
    assert info.value.code == ErrorCode.ERR_HANDLER_NOT_FOUND
    with pytest.raises(PegasusError) as info:
        await pool.call(shared_onebox.meta, "meta.create_app", {"name": "x", "partition_count": "8"}, 5.0)
    assert info.value.code == ErrorCode.ERR_INVALID_PARAMETERS
    reply = await pool.call(part["primary"], "rrdb.get",
                            {"gpid": part["gpid"], "hash_key": b"h", "sort_key": b"s"}, 5.0)
    assert "value" in reply


@pytest_twisted.ensureDeferred
async def test_tables_lifecycle_through_admin(client):
    admin = client.admin
    created = (await admin.create_app("life", partition_count=2, replica_count=1))["app"]
    names = [a["name"] for a in (await admin.list_apps())["apps"]]
    assert "life" in names
    await admin.drop_app("life", reserve_seconds=3600)
    dropped = (await admin.list_apps(status="dropped"))["apps"]
    assert created["app_id"] in [a["app_id"] for a in dropped]
    with pytest.raises(TableNotFoundError):
        await client.open_table("life")
    await admin.recall_app(created["app_id"], "life2")
    deadline = time.monotonic() + 10
    while True:
        try:
            table = await client.open_table("life2")
            await table.set(b"a", b"b", b"c")
            break
        except PegasusError:
            if time.monotonic() > deadline:
                raise
            await sleep(0.2)
    assert await table.get(b"a", b"b") == b"c"
