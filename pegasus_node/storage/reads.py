"""Range reads over the memtable: multi_get, sortkey_count and scan. Expired records are absent."""

from __future__ import annotations

from pegasus_node.base.keys import decode_key, encode_key, hash_key_prefix, prefix_successor
from pegasus_node.errors import invalid_parameters

from .memtable import Memtable, is_expired


def multi_get(
    table: Memtable,
    hash_key: bytes,
    *,
    sort_keys: list[bytes] | None,
    start_sk: bytes,
    stop_sk: bytes,
    start_inclusive: bool,
    stop_inclusive: bool,
    max_kv_count: int,
    max_kv_size: int,
    no_value: bool,
    now: float,
) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Pegasus's multi_get: the listed sort keys (in sort-key order), or else a sort-key range (empty
    ``stop_sk``: to the last sort key). Limits <= 0 mean none. Reading stops before the record that would go
    past ``max_kv_count``, or once the keys and values read reach ``max_kv_size`` bytes; ``complete`` is
    False when a live record was left out."""
    if sort_keys:
        keys = [encode_key(hash_key, sk) for sk in sorted(set(sort_keys))]
    else:
        prefix = hash_key_prefix(hash_key)
        if stop_sk:
            upper, upper_inclusive = prefix + stop_sk, stop_inclusive
        else:
            upper, upper_inclusive = prefix_successor(prefix), False
        keys = table.irange(prefix + start_sk, upper, (start_inclusive, upper_inclusive))
    kvs: list[tuple[bytes, bytes]] = []
    size = 0
    for key in keys:
        record = table.get(key)
        if record is None or is_expired(record, now):
            continue
        if (0 < max_kv_count <= len(kvs)) or (0 < max_kv_size <= size):
            return kvs, False
        _, sort_key = decode_key(key)
        value = b"" if no_value else record.value
        kvs.append((sort_key, value))
        size += len(sort_key) + len(value)
    return kvs, True


def sortkey_count(table: Memtable, hash_key: bytes, now: float) -> int:
    prefix = hash_key_prefix(hash_key)
    keys = table.irange(prefix, prefix_successor(prefix), (True, False))
    return sum(1 for key in keys if not is_expired(table.data[key], now))


def scan(
    table: Memtable,
    start_key: bytes,
    stop_key: bytes,
    start_inclusive: bool,
    stop_inclusive: bool,
    limit: int,
    no_value: bool,
    now: float,
) -> tuple[list[tuple[bytes, bytes, bytes]], bytes | None]:
    """Up to ``limit`` live records with storage keys in the range (empty ``stop_key``: to the end).

    ``next_start_key`` is the storage key of the last record returned when more live records remain in the
    range (the next batch starts after it, exclusive), and None when the range is exhausted.
    """
    if limit <= 0:
        raise invalid_parameters(f"scan: batch size must be > 0, got {limit}")
    upper = stop_key or None
    kvs: list[tuple[bytes, bytes, bytes]] = []
    last_key = None
    for key in table.irange(start_key, upper, (start_inclusive, stop_inclusive)):
        record = table.data[key]
        if is_expired(record, now):
            continue
        if len(kvs) == limit:
            return kvs, last_key
        hash_key, sort_key = decode_key(key)
        kvs.append((hash_key, sort_key, b"" if no_value else record.value))
        last_key = key
    return kvs, None
