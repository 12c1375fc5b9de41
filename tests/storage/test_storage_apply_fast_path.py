"""The put/del fast path of ``apply_writes`` against the general path it short-cuts.

``_plain_key`` is the gate of the fast path; patched to always say "no", every op goes through the general
path, which is the reference: results (including error codes and messages) and the table must match.
"""

from __future__ import annotations

import enum

import pytest

from pegasus_node.base.keys import MAX_HASH_KEY_LEN
from pegasus_node.storage import Mutation, operations
from pegasus_node.storage.memtable import Memtable
from pegasus_node.storage.operations import INT64_MAX, apply_writes
from .storage_testutil import T0, mut

NOW = T0
TIMETAG = 12345


class _Small(enum.IntEnum):
    ONE = 1


def _ops() -> list:
    ops: list = []
    # Each key gets a TTL, then is overwritten with and without one, then deleted, so the expiry index is
    # exercised on every path through Memtable.put.
    for n in range(3):
        hk, sk = b"h%d" % n, b"s%d" % n
        ops += [
            {"op": "put", "hk": hk, "sk": sk, "v": b"v1", "expire": T0 + 100},
            {"op": "put", "hk": hk, "sk": sk, "v": b"v2", "expire": T0 + 200},
            {"op": "put", "hk": hk, "sk": sk, "v": b"v3"},
            {"op": "put", "hk": hk, "sk": sk, "v": b"v4", "expire": 0},
            {"op": "put", "hk": hk, "sk": sk, "v": b"v5", "expire": T0 + 300},
            {"op": "put", "hk": hk, "sk": sk + b"x", "v": b"", "expire": T0 - 1},  # expired on write
        ]
    ops.append({"op": "del", "hk": b"h0", "sk": b"s0"})
    ops.append({"op": "del", "hk": b"h1", "sk": b"s1x"})
    ops.append({"op": "del", "hk": b"h1", "sk": b"absent"})
    # Every field variant, valid or not, for put and del.
    good = {"op": "put", "hk": b"hk", "sk": b"sk", "v": b"value", "expire": 0}
    variants = [
        {},
        {"hk": bytearray(b"hk")}, {"sk": memoryview(b"sk")}, {"v": bytearray(b"value")},
        {"hk": "hk"}, {"sk": None}, {"v": 5}, {"v": "text"}, {"hk": 7}, {"sk": [b"s"]},
        {"expire": True}, {"expire": False}, {"expire": 1.5}, {"expire": -1}, {"expire": INT64_MAX},
        {"expire": INT64_MAX + 1}, {"expire": -(1 << 64)}, {"expire": "10"}, {"expire": None},
        {"expire": _Small.ONE},
        {"hk": b"x" * MAX_HASH_KEY_LEN}, {"hk": b"x" * (MAX_HASH_KEY_LEN + 1)},
        {"hk": bytearray(b"x" * (MAX_HASH_KEY_LEN + 1))},
        {"timetag": 1}, {"timetag": TIMETAG + 1}, {"timetag": 0}, {"timetag": -1}, {"timetag": True},
        {"timetag": None}, {"timetag": "1"}, {"timetag": INT64_MAX + 1},
        {"hk": bytearray(b"hk"), "timetag": TIMETAG + 2},
    ]
    for change in variants:
        ops.append({**good, **change})
        ops.append({"op": "del", "hk": b"hk", "sk": b"sk", **{k: v for k, v in change.items()
                                                                if k not in ("v", "expire")}})
        ops.append({**good, **change})
    for missing in ("hk", "sk", "v", "expire"):
        ops.append({k: v for k, v in good.items() if k != missing})
        ops.append({k: v for k, v in {"op": "del", "hk": b"hk", "sk": b"sk"}.items() if k != missing})
    return ops


def _apply(ops) -> tuple[list[dict], Memtable]:
    table = Memtable()
    results = apply_writes(table, ops, now_s=NOW, timetag=TIMETAG)
    return results, table


def _check_table(table: Memtable) -> list:
    items = table.items()
    ttl_keys = {key for key, record in items if record.expire_ts > 0}
    # The expiry index has exactly the records with a TTL: purging them all finds every one of them.
    assert table.purge_expired(INT64_MAX) == len(ttl_keys)
    assert set(key for key, _ in table.items()) == {key for key, _ in items} - ttl_keys
    return items


def _encodable(op: dict) -> bool:
    try:  # msgpack has no encoding for ints beyond [-2**63, 2**64 - 1]
        mut(1, op).encode()
    except (OverflowError, TypeError, ValueError):
        return False
    return True


@pytest.fixture
def general_only(monkeypatch):
    def use_general_path():
        monkeypatch.setattr(operations, "_plain_key", lambda op: None)
    return use_general_path


def test_fast_path_matches_general_path(general_only):
    ops = _ops()
    fast_results, fast_table = _apply(ops)
    general_only()
    general_results, general_table = _apply(ops)
    assert fast_results == general_results
    fast_items, general_items = _check_table(fast_table), _check_table(general_table)
    assert fast_items == general_items
    assert [type(record.expire_ts) for _, record in fast_items] == \
        [type(record.expire_ts) for _, record in general_items]
    # Both kinds of result occur, so the comparison means something.
    assert any(r == {} for r in fast_results) and any("error" in r for r in fast_results)


def test_fast_path_matches_after_msgpack():
    """The primary applies ops from memory, replicas after msgpack: the fast path must not tell them apart."""
    ops = [op for op in _ops() if _encodable(op)]
    assert len(ops) > 100
    in_memory, memory_table = _apply(ops)
    decoded, decoded_table = _apply(Mutation.decode(mut(1, *ops).encode()).writes)
    assert in_memory == decoded
    assert _check_table(memory_table) == _check_table(decoded_table)
