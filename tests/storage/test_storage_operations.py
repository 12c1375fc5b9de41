"""Write ops applied through StorageEngine.apply, and point reads with TTLs."""

from __future__ import annotations

import pytest

from pegasus_node.base.timetag import make_timetag, split_timetag
from pegasus_node.errors import ErrorCode
from pegasus_node.storage import (
    ApplyOrderError,
    CheckType,
    cas_op,
    del_op,
    expire_ts_from_ttl,
    incr_expire_from_ttl,
    incr_op,
    is_error,
    multi_del_op,
    multi_put_op,
    put_op,
)
from pegasus_node.storage.operations import INT64_MAX, INT64_MIN
from .storage_testutil import T0, mut, open_engine, ts_us


@pytest.fixture
def engine(tmp_path):
    eng = open_engine(tmp_path, cluster_id=3)
    yield eng
    eng.close()


class Applier:
    """Applies one mutation per call, with consecutive decrees."""

    def __init__(self, engine):
        self.engine = engine

    def __call__(self, *writes, at: float = 0):
        return self.engine.apply(mut(self.engine.last_applied_decree + 1, *writes, at=at))


@pytest.fixture
def apply(engine):
    return Applier(engine)


def test_put_get_del_and_timetag(engine, apply):
    assert apply(put_op(b"h", b"s", b"v1")) == [{}]
    record = engine.get_record(b"h", b"s", now=T0)
    assert record.value == b"v1" and record.expire_ts == 0
    assert record.timetag == make_timetag(ts_us(), 3)
    assert split_timetag(record.timetag).cluster_id == 3
    assert engine.get("h", "s", now=T0) == b"v1"  # str keys are UTF-8
    assert engine.exist(b"h", b"s", now=T0)
    apply(put_op(b"h", b"s", b"v2"), at=1)
    assert engine.get(b"h", b"s", now=T0) == b"v2"
    assert apply(del_op(b"h", b"s")) == [{}]
    assert engine.get(b"h", b"s", now=T0) is None
    assert not engine.exist(b"h", b"s", now=T0)
    assert apply(del_op(b"h", b"missing")) == [{}]
    assert engine.last_applied_decree == 4


def test_ttl_and_expiry_on_read(engine, apply):
    apply(put_op(b"h", b"ttl", b"x", T0 + 10), put_op(b"h", b"forever", b"y"))
    assert engine.ttl(b"h", b"ttl", now=T0) == 10
    assert engine.ttl(b"h", b"ttl", now=T0 + 9.5) == 1  # rounded up: still alive
    assert engine.ttl(b"h", b"forever", now=T0) == -1
    assert engine.ttl(b"h", b"absent", now=T0) is None
    assert engine.get(b"h", b"ttl", now=T0 + 9) == b"x"
    assert engine.get(b"h", b"ttl", now=T0 + 10) is None  # expire_ts <= now: expired
    assert engine.get_record(b"h", b"ttl", now=T0 + 11) is None
    assert not engine.exist(b"h", b"ttl", now=T0 + 10)
    assert engine.ttl(b"h", b"ttl", now=T0 + 10) is None
    assert engine.stats()["record_count"] == 2
    # Applying a mutation stamped after the expiry drops the record from memory on every replica.
    apply(put_op(b"h", b"other", b"z"), at=20)
    assert engine.stats()["record_count"] == 2
    assert engine.get_record(b"h", b"ttl", now=T0) is None


def test_ttl_helpers():
    assert expire_ts_from_ttl(0, T0) == 0
    assert expire_ts_from_ttl(30, T0) == T0 + 30
    assert incr_expire_from_ttl(0, T0) == 0
    assert incr_expire_from_ttl(-1, T0) == -1
    assert incr_expire_from_ttl(5, T0) == T0 + 5


def test_multi_put_and_multi_del(engine, apply):
    apply(multi_put_op(b"h", [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")], T0 + 100))
    assert [engine.get(b"h", k, now=T0) for k in (b"a", b"b", b"c")] == [b"1", b"2", b"3"]
    assert engine.ttl(b"h", b"b", now=T0) == 100
    apply(put_op(b"h", b"short", b"x", T0 + 1))
    result = apply(multi_del_op(b"h", [b"a", b"c", b"nope", b"short"]), at=5)
    assert result == [{"count": 2}]  # "nope" is absent and "short" had expired
    assert engine.multi_get(b"h", now=T0)[0] == [(b"b", b"2")]


def test_incr(engine, apply):
    assert apply(incr_op(b"h", b"n", 5)) == [{"value": 5}]
    assert apply(incr_op(b"h", b"n", -7)) == [{"value": -2}]
    assert engine.get(b"h", b"n", now=T0) == b"-2"
    apply(put_op(b"h", b"empty", b""))
    assert apply(incr_op(b"h", b"empty", 3)) == [{"value": 3}]  # an empty value counts as 0
    apply(put_op(b"h", b"text", b"12abc"))
    [bad] = apply(incr_op(b"h", b"text", 1))
    assert bad["error"] == ErrorCode.ERR_INVALID_PARAMETERS and "not a decimal int64" in bad["message"]
    assert engine.get(b"h", b"text", now=T0) == b"12abc"
    apply(put_op(b"h", b"max", str(INT64_MAX).encode()))
    [overflow] = apply(incr_op(b"h", b"max", 1))
    assert is_error(overflow) and "overflows" in overflow["message"]
    assert engine.get(b"h", b"max", now=T0) == str(INT64_MAX).encode()
    apply(put_op(b"h", b"min", str(INT64_MIN).encode()))
    assert is_error(apply(incr_op(b"h", b"min", -1))[0])
    assert apply(incr_op(b"h", b"min", 0)) == [{"value": INT64_MIN}]
    apply(put_op(b"h", b"big", b"99999999999999999999"))  # beyond int64
    assert is_error(apply(incr_op(b"h", b"big", 1))[0])
    assert is_error(apply({"op": "incr", "hk": b"h", "sk": b"n", "by": "1"})[0])
    assert is_error(apply({"op": "incr", "hk": b"h", "sk": b"n", "by": 1 << 63})[0])


def test_incr_expiry_rules(engine, apply):
    apply(put_op(b"h", b"n", b"10", T0 + 100))
    apply(incr_op(b"h", b"n", 1, 0))  # 0 keeps the existing expiry
    assert engine.get_record(b"h", b"n", now=T0).expire_ts == T0 + 100
    apply(incr_op(b"h", b"n", 1, T0 + 500))  # > 0 sets it
    assert engine.get_record(b"h", b"n", now=T0).expire_ts == T0 + 500
    apply(incr_op(b"h", b"n", 1, -1))  # -1 clears it
    assert engine.ttl(b"h", b"n", now=T0) == -1
    assert engine.get(b"h", b"n", now=T0) == b"13"
    # An expired record counts as 0, and its old expiry is not carried over.
    apply(put_op(b"h", b"e", b"40", T0 + 10))
    assert apply(incr_op(b"h", b"e", 2), at=20) == [{"value": 2}]
    assert engine.ttl(b"h", b"e", now=T0 + 20) == -1


CAS_CASES = [
    # (check_type, stored value or None, operand, expected pass)
    (CheckType.CT_NO_CHECK, None, b"", True),
    (CheckType.CT_VALUE_NOT_EXIST, None, b"", True),
    (CheckType.CT_VALUE_NOT_EXIST, b"x", b"", False),
    (CheckType.CT_VALUE_NOT_EXIST_OR_EMPTY, b"", b"", True),
    (CheckType.CT_VALUE_NOT_EXIST_OR_EMPTY, None, b"", True),
    (CheckType.CT_VALUE_NOT_EXIST_OR_EMPTY, b"x", b"", False),
    (CheckType.CT_VALUE_EXIST, b"", b"", True),
    (CheckType.CT_VALUE_EXIST, None, b"", False),
    (CheckType.CT_VALUE_NOT_EMPTY, b"x", b"", True),
    (CheckType.CT_VALUE_NOT_EMPTY, b"", b"", False),
    (CheckType.CT_VALUE_NOT_EMPTY, None, b"", False),
    (CheckType.CT_VALUE_MATCH_ANYWHERE, b"hello", b"ell", True),
    (CheckType.CT_VALUE_MATCH_ANYWHERE, b"hello", b"", True),
    (CheckType.CT_VALUE_MATCH_ANYWHERE, b"hello", b"xyz", False),
    (CheckType.CT_VALUE_MATCH_ANYWHERE, None, b"", False),
    (CheckType.CT_VALUE_MATCH_PREFIX, b"hello", b"he", True),
    (CheckType.CT_VALUE_MATCH_PREFIX, b"hello", b"lo", False),
    (CheckType.CT_VALUE_MATCH_POSTFIX, b"hello", b"lo", True),
    (CheckType.CT_VALUE_MATCH_POSTFIX, b"hello", b"he", False),
    (CheckType.CT_VALUE_BYTES_LESS, b"abc", b"abd", True),
    (CheckType.CT_VALUE_BYTES_LESS, b"abc", b"abc", False),
    (CheckType.CT_VALUE_BYTES_LESS_OR_EQUAL, b"abc", b"abc", True),
    (CheckType.CT_VALUE_BYTES_EQUAL, b"abc", b"abc", True),
    (CheckType.CT_VALUE_BYTES_EQUAL, b"abc", b"ab", False),
    (CheckType.CT_VALUE_BYTES_GREATER_OR_EQUAL, b"b", b"abc", True),
    (CheckType.CT_VALUE_BYTES_GREATER, b"abc", b"abc", False),
    (CheckType.CT_VALUE_BYTES_GREATER, None, b"", False),
    (CheckType.CT_VALUE_INT_LESS, b"9", b"10", True),  # numeric, not bytewise
    (CheckType.CT_VALUE_INT_LESS_OR_EQUAL, b"10", b"10", True),
    (CheckType.CT_VALUE_INT_EQUAL, b"-3", b"-3", True),
    (CheckType.CT_VALUE_INT_GREATER_OR_EQUAL, b"2", b"10", False),
    (CheckType.CT_VALUE_INT_GREATER, b"11", b"10", True),
    (CheckType.CT_VALUE_INT_GREATER, None, b"10", False),
]


@pytest.mark.parametrize("check_type, stored, operand, passes", CAS_CASES)
def test_cas_check_types(engine, apply, check_type, stored, operand, passes):
    if stored is not None:
        apply(put_op(b"h", b"check", stored))
    [result] = apply(cas_op(b"h", b"check", check_type, operand, b"target", b"new", 0, True))
    assert result == {"set_succeed": passes, "check_value_exist": stored is not None, "check_value": stored}
    assert engine.get(b"h", b"target", now=T0) == (b"new" if passes else None)


def test_cas_details(engine, apply):
    apply(put_op(b"h", b"c", b"old"))
    # Without return_check_value the check value is not returned.
    [result] = apply(cas_op(b"h", b"c", CheckType.CT_VALUE_EXIST, b"", b"c", b"new", T0 + 50))
    assert result == {"set_succeed": True, "check_value_exist": False, "check_value": None}
    assert engine.get(b"h", b"c", now=T0) == b"new" and engine.ttl(b"h", b"c", now=T0) == 50
    # An expired check value does not exist.
    [result] = apply(cas_op(b"h", b"c", CheckType.CT_VALUE_NOT_EXIST, b"", b"c", b"again", 0, True), at=60)
    assert result == {"set_succeed": True, "check_value_exist": False, "check_value": None}
    # Int checks: a non-int stored value or operand is an error, and nothing is set.
    apply(put_op(b"h", b"word", b"abc"))
    [error] = apply(cas_op(b"h", b"word", CheckType.CT_VALUE_INT_LESS, b"5", b"t", b"v"))
    assert error["error"] == ErrorCode.ERR_INVALID_PARAMETERS and "check value" in error["message"]
    [error] = apply(cas_op(b"h", b"c", CheckType.CT_VALUE_INT_LESS, b"five", b"t", b"v"))
    assert is_error(error) and "check_operand" in error["message"]
    assert engine.get(b"h", b"t", now=T0 + 60) is None
    [error] = apply({**cas_op(b"h", b"c", 0, b"", b"t", b"v"), "check_type": 99})
    assert is_error(error) and "check_type" in error["message"]


def test_malformed_ops_are_error_results(engine, apply):
    bad_ops = [
        "not a dict",
        {"op": "frobnicate"},
        {"hk": b"h"},
        {"op": "put", "hk": b"h", "sk": b"s"},  # no value
        {"op": "put", "hk": "h", "sk": b"s", "v": b"v"},  # str, not bytes
        {"op": "put", "hk": b"h", "sk": b"s", "v": b"v", "expire": -5},
        {"op": "put", "hk": b"h", "sk": b"s", "v": b"v", "expire": True},
        {"op": "put", "hk": b"x" * 70000, "sk": b"s", "v": b"v"},
        {"op": "multi_put", "hk": b"h", "kvs": []},
        {"op": "multi_put", "hk": b"h", "kvs": [[b"a", b"1"], [b"b"]]},
        {"op": "multi_del", "hk": b"h", "sks": [b"a", 5]},
        {"op": "multi_del", "hk": b"h", "sks": []},
        {"op": "cas", "hk": b"h", "check_sk": b"c", "check_type": 0, "set_sk": b"s", "set_v": b"v",
         "return_check_value": "yes"},
    ]
    results = apply(*bad_ops, put_op(b"h", b"after", b"ok"))
    assert all(r["error"] == ErrorCode.ERR_INVALID_PARAMETERS and r["message"] for r in results[:-1])
    assert results[-1] == {}
    # Nothing from the bad ops was written, not even the valid first half of the multi_put.
    assert engine.multi_get(b"h", now=T0)[0] == [(b"after", b"ok")]


def test_duplicated_writes_apply_only_when_newer(engine, apply):
    apply(put_op(b"h", b"k", b"local"), at=10)
    local_tag = engine.get_record(b"h", b"k", now=T0).timetag
    older, newer = make_timetag(ts_us(5), 2), make_timetag(ts_us(15), 2)
    apply(put_op(b"h", b"k", b"remote-old", timetag=older), at=11)
    assert engine.get(b"h", b"k", now=T0) == b"local"
    apply(del_op(b"h", b"k", timetag=older), at=11)
    assert engine.get_record(b"h", b"k", now=T0).timetag == local_tag
    apply(put_op(b"h", b"k", b"remote-new", timetag=newer), at=12)
    assert engine.get_record(b"h", b"k", now=T0).timetag == newer
    apply(multi_del_op(b"h", [b"k"], timetag=make_timetag(ts_us(20), 2)), at=13)
    assert engine.get(b"h", b"k", now=T0) is None


def test_apply_order(engine, apply):
    apply(put_op(b"h", b"a", b"1"))
    apply(put_op(b"h", b"a", b"2"))
    assert engine.apply(mut(1, put_op(b"h", b"a", b"old"))) == []  # a re-apply is ignored
    assert engine.get(b"h", b"a", now=T0) == b"2"
    with pytest.raises(ApplyOrderError) as info:
        engine.apply(mut(4, put_op(b"h", b"a", b"gap")))
    assert info.value.code == ErrorCode.ERR_INCONSISTENT_STATE and "decree 4" in str(info.value)
    assert engine.last_applied_decree == 2


def test_builders_accept_str():
    assert put_op("h", "s", "v", 7) == {"op": "put", "hk": b"h", "sk": b"s", "v": b"v", "expire": 7}
    assert multi_put_op("h", [("a", "1")])["kvs"] == [[b"a", b"1"]]
    assert cas_op("h", "c", CheckType.CT_VALUE_EXIST, "", "s", "v")["check_type"] == 3
    with pytest.raises(TypeError):
        put_op(b"h", b"s", 5)


def test_in_memory_and_decoded_ops_agree(engine, apply):
    """The primary applies ops as built; replicas apply them after msgpack: the verdicts must match."""
    from pegasus_node.storage import Mutation

    ops = (
        {"op": "put", "hk": bytearray(b"h"), "sk": memoryview(b"a"), "v": bytearray(b"1")},
        {"op": "multi_put", "hk": b"h", "kvs": [(bytearray(b"b"), b"2")]},
        {"op": "put", "hk": b"h", "sk": b"c", "v": b"3", "expire": 1.5},
        {"op": "put", "hk": b"h", "sk": b"d", "v": "text"},
    )
    in_memory = apply(*ops)
    decoded = Mutation.decode(mut(99, *ops).encode())
    assert apply(*decoded.writes) == in_memory
    assert in_memory[:2] == [{}, {}] and is_error(in_memory[2]) and is_error(in_memory[3])
