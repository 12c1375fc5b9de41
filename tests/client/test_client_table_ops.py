"""Every Table operation against real RPC servers holding real in-memory storage."""

from __future__ import annotations

import pytest
import pytest_twisted

from pegasus_node.base.keys import encode_key, partition_index
from pegasus_node.client import CheckAndSetResult, CheckType, TableNotFoundError
from pegasus_node.errors import ErrorCode, PegasusError


@pytest_twisted.ensureDeferred
async def test_single_record_operations(cluster, client) -> None:
    table = await client.open_table("t")
    assert (table.name, table.partition_count, table.app_id) == ("t", 4, 1)
    assert await table.get(b"h", b"s") is None
    assert await table.exist("h", "s") is False
    assert await table.ttl("h", "s") is None
    assert await table.set("h", "s", "v") is None
    assert await table.get(b"h", b"s") == b"v"
    assert await table.exist(b"h", b"s") is True
    assert await table.ttl(b"h", b"s") == -1
    await table.set(b"h", b"t", b"w", ttl_seconds=100)
    assert 98 <= await table.ttl(b"h", b"t") <= 100
    await table.delete(b"h", b"s")
    assert await table.get(b"h", b"s") is None
    await table.remove(b"h", b"t")
    assert await table.exist(b"h", b"t") is False


@pytest_twisted.ensureDeferred
async def test_requests_go_to_the_partitions_primary(cluster, client) -> None:
    table = await client.open_table("t")
    app = cluster.apps["t"]
    keys = [b"k%d" % i for i in range(40)]
    for hash_key in keys:
        await table.set(hash_key, b"s", b"v")
    for hash_key in keys:
        homes = [p for p, store in enumerate(app.stores) if encode_key(hash_key, b"s") in store.data]
        assert homes == [partition_index(hash_key, 4)]
    assert len({partition_index(k, 4) for k in keys}) == 4
    writes_by_primary = {r.address: r.calls["put"] for r in cluster.replicas}
    expected = {r.address: 0 for r in cluster.replicas}
    for hash_key in keys:
        expected[app.partitions[partition_index(hash_key, 4)].primary] += 1
    assert writes_by_primary == expected


@pytest_twisted.ensureDeferred
async def test_multi_operations(cluster, client) -> None:
    table = await client.open_table("t")
    await table.multi_set(b"h", {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"})
    await table.multi_set(b"h", [(b"e", b"5")], ttl_seconds=50)
    assert await table.sortkey_count(b"h") == 5
    values, complete = await table.multi_get(b"h")
    assert values == {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4", b"e": b"5"} and complete
    assert list(values) == [b"a", b"b", b"c", b"d", b"e"]
    values, complete = await table.multi_get(b"h", [b"c", b"a", b"zz"])
    assert values == {b"a": b"1", b"c": b"3"} and complete
    values, complete = await table.multi_get(b"h", start_sort_key=b"b", stop_sort_key=b"d", stop_inclusive=True)
    assert list(values) == [b"b", b"c", b"d"]
    values, complete = await table.multi_get(b"h", max_kv_count=2, no_value=True)
    assert values == {b"a": b"", b"b": b""} and complete is False
    assert await table.multi_delete(b"h", [b"a", b"b", b"nope"]) == 2
    assert await table.multi_del(b"h", [b"c"]) == 1
    assert await table.sortkey_count(b"h") == 2


@pytest_twisted.ensureDeferred
async def test_incr_and_check_and_set(cluster, client) -> None:
    table = await client.open_table("t")
    assert await table.incr(b"h", b"n") == 1
    assert await table.incr(b"h", b"n", 41) == 42
    assert await table.incr(b"h", b"n", -50, ttl_seconds=100) == -8
    assert 98 <= await table.ttl(b"h", b"n") <= 100
    await table.incr(b"h", b"n", 0, ttl_seconds=-1)
    assert await table.ttl(b"h", b"n") == -1
    await table.set(b"h", b"text", b"abc")
    with pytest.raises(PegasusError) as info:
        await table.incr(b"h", b"text")
    assert info.value.code == ErrorCode.ERR_INVALID_PARAMETERS

    result = await table.check_and_set(b"h", b"lock", CheckType.CT_VALUE_NOT_EXIST, b"", b"lock", b"me")
    assert result == CheckAndSetResult(set_succeed=True)
    result = await table.check_and_set(
        b"h", b"lock", CheckType.CT_VALUE_NOT_EXIST, b"", b"lock", b"you", return_check_value=True
    )
    assert result == CheckAndSetResult(False, True, True, b"me")
    result = await table.check_and_set(
        b"h", b"n", CheckType.CT_VALUE_INT_LESS, b"0", b"flag", b"negative", return_check_value=True
    )
    assert result.set_succeed and result.check_value == b"-8"
    assert await table.get(b"h", b"flag") == b"negative"


@pytest_twisted.ensureDeferred
async def test_scanners(cluster, client) -> None:
    table = await client.open_table("t")
    await table.multi_set(b"h", {b"s%02d" % i: b"v%d" % i for i in range(25)})
    for i in range(30):
        await table.set(b"other%d" % i, b"x", b"y")

    scanner = table.get_scanner(b"h", b"s05", b"s20", batch_size=4)
    seen = []
    while batch := await scanner.next_batch():
        assert len(batch) <= 4
        seen.extend(batch)
    assert [sk for _, sk, _ in seen] == [b"s%02d" % i for i in range(5, 20)]
    assert all(hk == b"h" for hk, _, _ in seen) and seen[0][2] == b"v5"
    assert scanner.exhausted and await scanner.next_batch() == []

    records, complete = await table.hash_scan(b"h", b"s05", b"s10", start_inclusive=False, stop_inclusive=True)
    assert [sk for _, sk, _ in records] == [b"s06", b"s07", b"s08", b"s09", b"s10"] and complete
    records, complete = await table.hash_scan(b"h", max_count=7, batch_size=3, no_value=True)
    assert len(records) == 7 and not complete and records[0] == (b"h", b"s00", b"")

    scanners = table.get_unordered_scanners(3, batch_size=7)
    assert [s.partitions for s in scanners] == [[0, 1], [2], [3]]
    everything = []
    for s in scanners:
        while batch := await s.next_batch():
            everything.extend(batch)
    assert len(everything) == 55 and len(set(everything)) == 55
    records, complete = await table.full_scan(batch_size=10)
    assert sorted(records) == sorted(everything) and complete
    records, complete = await table.full_scan(max_count=55)
    assert len(records) == 55
    records, complete = await table.full_scan(max_count=54)
    assert len(records) == 54 and not complete


@pytest_twisted.ensureDeferred
async def test_unknown_table(cluster, client) -> None:
    with pytest.raises(TableNotFoundError, match="table 'nope' does not exist") as info:
        await client.open_table("nope")
    assert info.value.code == ErrorCode.ERR_APP_NOT_EXIST
