"""What a duplicator ships, and the duplication entry's wire form and words."""

from __future__ import annotations

import pytest

from pegasus_node.base.timetag import split_timetag
from pegasus_node.duplication.duplicator import shippable_ops
from pegasus_node.duplication.entry import DuplicationEntry, fail_mode_arg
from pegasus_node.errors import PegasusError
from pegasus_node.storage.mutation import Mutation


def mutation(writes, timestamp_us=1_700_000_000_000_000):
    return Mutation(ballot=1, decree=5, last_committed=4, timestamp_us=timestamp_us, writes=writes)


def test_ships_idempotent_writes_with_the_source_timetag_and_never_ships_back():
    put = {"op": "put", "hk": b"h", "sk": b"s", "v": b"v", "expire": 0}
    shipped_to_us = {"op": "put", "hk": b"x", "sk": b"s", "v": b"w", "expire": 0, "timetag": 123}
    incr = {"op": "incr", "hk": b"h", "sk": b"n", "by": 1, "expire": 0}
    delete = {"op": "del", "hk": b"h", "sk": b"s"}
    ops, non_idempotent = shippable_ops(mutation([put, shipped_to_us, incr, delete]), cluster_id=3)
    assert [op["op"] for op in ops] == ["put", "del"]
    assert non_idempotent == 1
    tag = split_timetag(ops[0]["timetag"])
    assert (tag.timestamp_us, tag.cluster_id, tag.deleted) == (1_700_000_000_000_000, 3, False)
    assert ops[0]["timetag"] == ops[1]["timetag"]
    assert "timetag" not in put  # the logged mutation is not changed


def test_entry_round_trips_and_fail_modes_read_as_pegasus_spells_them():
    entry = DuplicationEntry(1795345422, 2, "dst", confirmed={0: 5, 1: 7})
    assert DuplicationEntry.decode(entry.encode()) == entry
    assert entry.with_confirmed(1, 9).confirmed == {0: 5, 1: 9}
    assert [fail_mode_arg(m) for m in ("slow", "SKIP", "FAIL_FAST")] == ["FAIL_SLOW", "FAIL_SKIP", "FAIL_FAST"]
    with pytest.raises(PegasusError, match="slow, skip or fast"):
        fail_mode_arg("sometimes")


def test_shipments_are_cut_by_count_and_by_bytes_keeping_the_order():
    from pegasus_node.duplication import duplicator

    small = [{"op": "put", "hk": b"h", "v": b"x", "i": i} for i in range(duplicator.MAX_SHIPMENT_OPS + 3)]
    chunks = duplicator._chunks(small)
    assert [len(c) for c in chunks] == [duplicator.MAX_SHIPMENT_OPS, 3]
    assert [op["i"] for c in chunks for op in c] == list(range(len(small)))
    big = [{"op": "multi_put", "hk": b"h", "kvs": [[b"s", b"v" * (duplicator.MAX_SHIPMENT_BYTES // 2)]]}] * 3
    assert [len(c) for c in duplicator._chunks(big)] == [2, 1]
