"""multi_get ranges and limits, sortkey_count, scan pagination."""

from __future__ import annotations

import pytest

from pegasus_node.base.keys import encode_key, hash_key_prefix, prefix_successor
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.storage import multi_put_op, put_op
from .storage_testutil import T0, mut, open_engine

SORT_KEYS = [b"", b"a", b"b", b"b0", b"c", b"d\xff", b"e"]


@pytest.fixture
def engine(tmp_path):
    eng = open_engine(tmp_path)
    writes = [
        multi_put_op(b"h", [(sk, b"v-" + sk) for sk in SORT_KEYS]),
        # Neighbouring hash keys must never leak into a hash key's range.
        put_op(b"g", b"z", b"g-z"),
        put_op(b"h\x00", b"a", b"other"),
        put_op(b"hh", b"a", b"other"),
        put_op(b"i", b"", b"i-"),
        put_op(b"h", b"expired", b"gone", T0 - 1),
    ]
    eng.apply(mut(1, *writes, at=-100))
    yield eng
    eng.close()


def sks(result):
    kvs, _complete = result
    return [sk for sk, _ in kvs]


def test_multi_get_whole_hash_key(engine):
    kvs, complete = engine.multi_get(b"h", now=T0)
    assert kvs == [(sk, b"v-" + sk) for sk in SORT_KEYS] and complete


@pytest.mark.parametrize(
    "start, stop, start_incl, stop_incl, expected",
    [
        (b"a", b"c", True, False, [b"a", b"b", b"b0"]),
        (b"a", b"c", False, True, [b"b", b"b0", b"c"]),
        (b"a", b"c", True, True, [b"a", b"b", b"b0", b"c"]),
        (b"b", b"", True, False, [b"b", b"b0", b"c", b"d\xff", b"e"]),  # empty stop: to the end
        (b"b", b"", False, True, [b"b0", b"c", b"d\xff", b"e"]),
        (b"", b"b", True, False, [b"", b"a"]),
        (b"", b"b", False, False, [b"a"]),  # the empty sort key itself is excluded
        (b"c", b"c", True, True, [b"c"]),
        (b"c", b"c", True, False, []),
        (b"d", b"a", True, True, []),  # start after stop
        (b"zz", b"", True, False, []),
    ],
)
def test_multi_get_ranges(engine, start, stop, start_incl, stop_incl, expected):
    result = engine.multi_get(b"h", start_sk=start, stop_sk=stop, start_inclusive=start_incl,
                              stop_inclusive=stop_incl, now=T0)
    assert sks(result) == expected and result[1] is True


def test_multi_get_limits(engine):
    assert engine.multi_get(b"h", max_kv_count=3, now=T0) == (
        [(b"", b"v-"), (b"a", b"v-a"), (b"b", b"v-b")], False)
    assert engine.multi_get(b"h", max_kv_count=len(SORT_KEYS), now=T0)[1] is True
    # Size counts key + value bytes; reading stops once the total reaches the limit.
    assert sks(engine.multi_get(b"h", max_kv_size=5, now=T0)) == [b"", b"a"]  # 2 + 3 bytes
    assert engine.multi_get(b"h", max_kv_size=1, now=T0) == ([(b"", b"v-")], False)  # always one record
    kvs, complete = engine.multi_get(b"h", no_value=True, max_kv_count=2, start_sk=b"c", now=T0)
    assert kvs == [(b"c", b""), (b"d\xff", b"")] and complete is False
    assert engine.multi_get(b"h", start_sk=b"e", max_kv_count=1, now=T0) == ([(b"e", b"v-e")], True)


def test_multi_get_sort_keys(engine):
    kvs, complete = engine.multi_get(b"h", sort_keys=[b"e", b"a", b"missing", b"a", b"expired"], now=T0)
    assert kvs == [(b"a", b"v-a"), (b"e", b"v-e")] and complete
    assert engine.multi_get(b"h", sort_keys=[b"e", b"a", b"c"], max_kv_count=2, now=T0) == (
        [(b"a", b"v-a"), (b"c", b"v-c")], False)


def test_expired_records_are_absent(engine):
    assert engine.multi_get(b"h", sort_keys=[b"expired"], now=T0 - 2)[0] == [(b"expired", b"gone")]
    assert b"expired" not in sks(engine.multi_get(b"h", now=T0))
    assert engine.sortkey_count(b"h", now=T0) == len(SORT_KEYS)
    assert engine.sortkey_count(b"h", now=T0 - 2) == len(SORT_KEYS) + 1
    assert engine.sortkey_count(b"nobody", now=T0) == 0


def test_hash_key_too_long_is_a_clear_error(engine):
    with pytest.raises(PegasusError) as info:
        engine.get(b"x" * 70000, b"s")
    assert info.value.code == ErrorCode.ERR_INVALID_PARAMETERS


def scan_all(engine, batch, start=b"", stop=b"", start_incl=True, stop_incl=False, now=T0):
    collected, calls = [], 0
    while True:
        kvs, next_key = engine.scan(start, stop, start_incl, stop_incl, batch, now=now)
        calls += 1
        assert len(kvs) <= batch
        collected.extend(kvs)
        if next_key is None:
            return collected, calls
        assert len(kvs) == batch and encode_key(*kvs[-1][:2]) == next_key
        start, start_incl = next_key, False


@pytest.fixture
def big(tmp_path):
    eng = open_engine(tmp_path / "big")
    writes = [multi_put_op(b"hk%03d" % h, [(b"s%03d" % s, b"%d.%d" % (h, s)) for s in range(7)])
              for h in range(30)]
    writes.append(multi_put_op(b"hk005", [(b"x%d" % s, b"short-lived") for s in range(20)], T0 + 5))
    eng.apply(mut(1, *writes))
    yield eng
    eng.close()


@pytest.mark.parametrize("batch", [1, 7, 13, 210, 1000])
def test_scan_pagination_covers_everything_once(big, batch):
    collected, calls = scan_all(big, batch, now=T0 + 10)
    expected = sorted((b"hk%03d" % h, b"s%03d" % s, b"%d.%d" % (h, s)) for h in range(30) for s in range(7))
    assert collected == expected
    # An exactly full last batch still ends with None: no extra empty round trip.
    assert calls == -(-210 // batch)


def test_scan_ranges_and_hash_key_scan(big):
    prefix = hash_key_prefix(b"hk007")
    collected, _ = scan_all(big, 3, start=prefix, stop=prefix_successor(prefix))
    assert [sk for _, sk, _ in collected] == [b"s%03d" % s for s in range(7)]
    start, stop = encode_key(b"hk001", b"s005"), encode_key(b"hk002", b"s001")
    inner, _ = scan_all(big, 2, start=start, stop=stop, start_incl=False, stop_incl=True)
    assert [(hk, sk) for hk, sk, _ in inner] == [(b"hk001", b"s006"), (b"hk002", b"s000"), (b"hk002", b"s001")]
    kvs, next_key = big.scan(start, stop, True, False, 100, no_value=True, now=T0)
    assert kvs[0] == (b"hk001", b"s005", b"") and next_key is None


def test_scan_skips_expired_and_rejects_bad_limit(big):
    live, _ = scan_all(big, 50, now=T0)
    assert sum(1 for _, _, v in live if v == b"short-lived") == 20
    later, _ = scan_all(big, 50, now=T0 + 5)
    assert len(later) == 210
    with pytest.raises(PegasusError) as info:
        big.scan(b"", b"", True, False, 0)
    assert info.value.code == ErrorCode.ERR_INVALID_PARAMETERS
