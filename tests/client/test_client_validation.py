"""Arguments are rejected before any I/O, with PegasusClientError subclasses (ERR_INVALID_PARAMETERS)."""

from __future__ import annotations

import pytest
import pytest_twisted

from pegasus_node.client import (
    CheckType,
    Client,
    ClientClosedError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidTtlError,
    InvalidValueError,
    PegasusClientError,
    ValueTooLargeError,
)
from pegasus_node.client.validation import (
    hash_key_arg,
    kvs_arg,
    parse_meta_list,
    sort_key_arg,
    sort_keys_arg,
    ttl_arg,
    value_arg,
)
from pegasus_node.base.keys import partition_index
from pegasus_node.errors import ErrorCode, PegasusError


def test_client_errors_are_pegasus_errors_with_invalid_parameters() -> None:
    with pytest.raises(PegasusClientError) as info:
        hash_key_arg(b"")
    assert isinstance(info.value, PegasusError)
    assert info.value.code == ErrorCode.ERR_INVALID_PARAMETERS
    assert "must not be empty" in str(info.value)


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (b"", InvalidKeyError, "must not be empty"),
        ("", InvalidKeyError, "must not be empty"),
        (b"x" * 65536, InvalidKeyError, "65536 bytes; the limit is 65535"),
        (123, InvalidKeyError, "hash key must be bytes or str, not int"),
        (None, InvalidKeyError, "not NoneType"),
    ],
)
def test_bad_hash_keys(bad: object, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        hash_key_arg(bad)


def test_keys_accept_bytes_and_utf8_str() -> None:
    assert hash_key_arg("clé") == "clé".encode()
    assert hash_key_arg(b"x" * 65535) == b"x" * 65535
    assert hash_key_arg(bytearray(b"ab")) == b"ab"


def test_values_are_bounded_by_max_value_bytes() -> None:
    assert value_arg(b"x" * 10, 10) == b"x" * 10
    with pytest.raises(ValueTooLargeError, match="11 bytes; the limit is 10"):
        value_arg(b"x" * 11, 10)
    with pytest.raises(InvalidValueError, match="value must be bytes or str, not float"):
        value_arg(1.5, 10)


def test_fast_paths_accept_and_refuse_exactly_what_the_general_checks_do() -> None:
    class Key(bytes):
        pass

    class Seconds(int):
        pass

    assert hash_key_arg(Key(b"hk")) == b"hk" and value_arg(Key(b"v"), 1) == b"v"
    assert sort_key_arg(Key(b"")) == b"" and sort_key_arg(b"") == b""
    with pytest.raises(InvalidKeyError, match="must not be empty"):
        hash_key_arg(Key(b""))
    with pytest.raises(ValueTooLargeError, match="2 bytes; the limit is 1"):
        value_arg(Key(b"vv"), 1)
    assert ttl_arg(Seconds(5)) == 5 and ttl_arg((1 << 63) - 1) == (1 << 63) - 1
    with pytest.raises(InvalidTtlError, match="too large"):
        ttl_arg(1 << 63)
    with pytest.raises(InvalidTtlError, match="not bool"):
        ttl_arg(False)


def test_ttl_rules() -> None:
    assert ttl_arg(0) == 0 and ttl_arg(30) == 30
    with pytest.raises(InvalidTtlError, match="got -1"):
        ttl_arg(-1)
    assert ttl_arg(-1, allow_clear=True) == -1  # incr: clear the TTL
    with pytest.raises(InvalidTtlError):
        ttl_arg(-2, allow_clear=True)
    with pytest.raises(InvalidTtlError, match="must be an int, not bool"):
        ttl_arg(True)
    with pytest.raises(InvalidTtlError, match="not float"):
        ttl_arg(1.0)


def test_kvs_and_sort_key_lists() -> None:
    assert kvs_arg({"a": "1", b"b": b"2"}, 10) == [(b"a", b"1"), (b"b", b"2")]
    assert kvs_arg([("a", "1")], 10) == [(b"a", b"1")]
    with pytest.raises(InvalidArgumentError, match="must not be empty"):
        kvs_arg({}, 10)
    with pytest.raises(InvalidArgumentError, match="pair"):
        kvs_arg([("a", "1", "2")], 10)
    with pytest.raises(InvalidArgumentError, match="dict"):
        kvs_arg("ab", 10)
    with pytest.raises(ValueTooLargeError):
        kvs_arg({"a": "x" * 11}, 10)
    assert sort_keys_arg(["a", b"b"]) == [b"a", b"b"]
    with pytest.raises(InvalidKeyError, match="must not be empty"):
        sort_keys_arg([])
    with pytest.raises(InvalidKeyError, match="list"):
        sort_keys_arg(b"abc")


def test_meta_list_parsing() -> None:
    assert parse_meta_list("127.0.0.1:34601, 127.0.0.1:34602,") == ["127.0.0.1:34601", "127.0.0.1:34602"]
    assert parse_meta_list(["h:1", "h:1"]) == ["h:1"]
    for bad in ("", "host", "host:0", "host:65536", ":1", "h:x", 5):
        with pytest.raises(InvalidArgumentError):
            parse_meta_list(bad)


@pytest_twisted.ensureDeferred
async def test_table_methods_fail_before_any_io(cluster, client) -> None:
    table = await client.open_table("t", backup_request_delay_ms=0)
    sent_before = sum(sum(r.calls.values()) for r in cluster.replicas)
    small = Client(cluster.meta_list, max_value_bytes=4)
    small_table = await small.open_table("t")
    bad_calls = [
        (lambda: table.set(b"", b"s", b"v"), InvalidKeyError),
        (lambda: table.set(b"h", b"s", b"v", ttl_seconds=-5), InvalidTtlError),
        (lambda: table.set(b"h", 7, b"v"), InvalidKeyError),
        (lambda: table.set(b"h", b"s", object()), InvalidValueError),
        (lambda: small_table.set(b"h", b"s", b"12345"), ValueTooLargeError),
        (lambda: small_table.multi_set(b"h", {b"a": b"12345"}), ValueTooLargeError),
        (lambda: table.get(b"x" * 70000, b"s"), InvalidKeyError),
        (lambda: table.multi_get(b"h", [], max_kv_count=1), InvalidKeyError),
        (lambda: table.multi_get(b"h", max_kv_count=0), InvalidArgumentError),
        (lambda: table.multi_delete(b"h", []), InvalidKeyError),
        (lambda: table.incr(b"h", b"s", increment=1.5), InvalidArgumentError),
        (lambda: table.incr(b"h", b"s", increment=1 << 63), InvalidArgumentError),
        (lambda: table.check_and_set(b"h", b"c", 99, b"", b"s", b"v"), InvalidArgumentError),
        (lambda: table.check_and_set(b"h", b"c", CheckType.CT_NO_CHECK, b"", b"s", b"v", ttl_seconds=-1),
         InvalidTtlError),
        (lambda: table.get(b"h", b"s", timeout=0), InvalidArgumentError),
    ]
    for call, error in bad_calls:
        d = call()
        assert d.called, "validation must not wait for anything"
        with pytest.raises(error):
            await d
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        table.get_scanner(b"h", batch_size=0)
    with pytest.raises(InvalidArgumentError, match="max_split_count"):
        table.get_unordered_scanners(0)
    with pytest.raises(InvalidKeyError):
        table.get_scanner(b"")
    assert sum(sum(r.calls.values()) for r in cluster.replicas) == sent_before
    await small.close()


@pytest_twisted.ensureDeferred
async def test_closed_client_refuses(cluster) -> None:
    c = Client(cluster.meta_list)
    table = await c.open_table("t")
    await c.close()
    with pytest.raises(ClientClosedError):
        await table.get(b"h", b"s")
    with pytest.raises(ClientClosedError):
        await table.set(b"h", b"s", b"v")
    with pytest.raises(ClientClosedError):  # checked before the timeout argument, as before
        await table.get(b"h", b"s", timeout=-1)
    with pytest.raises(InvalidKeyError):  # but after the keys
        await table.get(b"", b"s")
    with pytest.raises(ClientClosedError):
        await c.open_table("t")


@pytest_twisted.ensureDeferred
async def test_closing_stops_retries_in_flight(cluster) -> None:
    from twisted.internet import reactor

    c = Client(cluster.meta_list, timeout=30.0)
    table = await c.open_table("t")
    cluster.clear_primary("t", 0)
    key = next(b"k%d" % i for i in range(100) if partition_index(b"k%d" % i, 4) == 0)
    retrying = table.set(key, b"s", b"v")
    reactor.callLater(0.1, c.close)
    with pytest.raises(ClientClosedError):  # not PegasusTimeoutError after 30 s
        await retrying
