"""Routing: Pegasus's CRC-64 picks the partition; scan ranges and scanner splits; config parsing."""

from __future__ import annotations

from collections import Counter

import pytest

from pegasus_node.base.keys import crc64, decode_key, encode_key, partition_index
from pegasus_node.client import partition_cache
from pegasus_node.client.partition_cache import ROUTE_CACHE_MAX_KEY_BYTES, parse_query_config
from pegasus_node.client.scanner import hash_key_range, split_partitions
from pegasus_node.errors import ErrorCode, PegasusError


def _bitwise_crc64(data: bytes) -> int:
    """CRC-64 as rDSN computes it, bit by bit: reflected poly 0x9a6c9329ac4bc9b5, init ~0, final ~."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x9A6C9329AC4BC9B5 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


PINNED = {
    b"123456789": 0xAE8B14860A799888,  # the published check value of these CRC parameters (CRC-64/NVME)
    b"a": 0x8C2F8445B4CBFC3C,
    b"hash_key": 0x65641F36E9F6A96D,
    b"pegasus": 0xCE8709CFBD3973C4,
}


@pytest.mark.parametrize("data, expected", PINNED.items())
def test_crc64_pinned_values(data: bytes, expected: int) -> None:
    assert crc64(data) == expected
    assert _bitwise_crc64(data) == expected


def test_partition_index_is_crc_mod_count() -> None:
    assert partition_index(b"123456789", 8) == 0xAE8B14860A799888 % 8 == 0
    assert partition_index(b"a", 8) == 4
    assert partition_index(b"hash_key", 8) == 5
    assert partition_index(b"hash_key", 7) == 0x65641F36E9F6A96D % 7


def test_partitions_are_evenly_spread() -> None:
    counts = Counter(partition_index(b"user:%d" % i, 8) for i in range(16000))
    assert sorted(counts) == list(range(8))
    assert all(1700 <= n <= 2300 for n in counts.values()), counts


def test_hash_key_range_covers_exactly_that_hash_key() -> None:
    r = hash_key_range(b"hk", b"", b"", True, False)
    assert r.start_key == encode_key(b"hk", b"")
    inside = [encode_key(b"hk", sk) for sk in (b"", b"a", b"\xff" * 10)]
    outside = [encode_key(b"hj", b"zzz"), encode_key(b"hl", b""), encode_key(b"hk\x00", b""), encode_key(b"h", b"k")]
    for key in inside:
        assert r.start_key <= key < r.stop_key
    for key in outside:
        assert not (r.start_key <= key < r.stop_key), decode_key(key)
    bounded = hash_key_range(b"hk", b"b", b"d", False, True)
    assert (bounded.start_key, bounded.stop_key) == (encode_key(b"hk", b"b"), encode_key(b"hk", b"d"))
    assert (bounded.start_inclusive, bounded.stop_inclusive) == (False, True)
    assert bounded.hash_key == b"hk" and bounded.partition is None


def test_split_partitions() -> None:
    assert split_partitions(8, 3) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert split_partitions(4, 10) == [[0], [1], [2], [3]]
    assert split_partitions(5, 1) == [[0, 1, 2, 3, 4]]


def test_parse_query_config_orders_partitions_and_rejects_gaps() -> None:
    reply = {
        "app": {"app_id": 3, "partition_count": 2},
        "partitions": [
            {"gpid": [3, 1], "ballot": 4, "primary": "h:2", "secondaries": ["h:1"]},
            {"gpid": [3, 0], "ballot": 2, "primary": "", "secondaries": []},
        ],
    }
    config = parse_query_config("t", reply, version=7)
    assert (config.app_id, config.partition_count, config.version) == (3, 2, 7)
    assert config.partitions[0].primary == "" and config.partitions[1].secondaries == ("h:1",)
    assert config.partition_of(b"hash_key") is config.partitions[partition_index(b"hash_key", 2)]
    reply["partitions"].pop()
    with pytest.raises(PegasusError) as info:
        parse_query_config("t", reply, version=8)
    assert info.value.code == ErrorCode.ERR_INVALID_DATA


def _config(partition_count: int, version: int = 1):
    reply = {
        "app": {"app_id": 5, "partition_count": partition_count},
        "partitions": [{"gpid": [5, i], "primary": f"h:{i}"} for i in range(partition_count)],
    }
    return parse_query_config("t", reply, version=version)


def test_partition_of_caches_routes_without_changing_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition_cache, "ROUTE_CACHE_MAX_ENTRIES", 100)
    config = _config(8)
    keys = [b"user:%d" % i for i in range(1000)]
    for _ in range(2):  # the second round partly from the cache
        for key in keys:
            assert config.partition_of(key) is config.partitions[partition_index(key, 8)]
        assert 0 < len(config._routes) <= 100  # emptied whenever it is full
    for key in (b"x" * (ROUTE_CACHE_MAX_KEY_BYTES + 1), bytearray(b"hash_key")):
        assert config.partition_of(key) is config.partitions[partition_index(bytes(key), 8)]
        assert bytes(key) not in config._routes  # long keys and unhashable ones are not cached
    assert config.partition_of(b"hash_key") is config.partitions[5]
    # A refreshed configuration routes afresh: its partition count may have changed.
    assert _config(7, version=2).partition_of(b"hash_key").index == 0x65641F36E9F6A96D % 7
    assert config == _config(8) and hash(config) == hash(_config(8))  # the cache is no part of the value
