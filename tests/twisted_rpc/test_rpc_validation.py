import enum

import pytest

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc import expect


def invalid(body, fields, **kw) -> str:
    with pytest.raises(PegasusError) as info:
        expect(body, fields, **kw)
    assert info.value.code == ErrorCode.ERR_INVALID_PARAMETERS
    return info.value.message


def test_expect_returns_the_declared_fields_only():
    body = {"name": "t", "partition_count": 8, "extra": 1}
    assert expect(body, {"name": str, "partition_count": int}) == {"name": "t", "partition_count": 8}


def test_missing_and_mistyped_fields_are_named():
    assert invalid({"name": "t"}, {"name": str, "partition_count": int}) == "missing field 'partition_count'"
    message = invalid({"name": "t", "partition_count": "8"}, {"name": str, "partition_count": int})
    assert message.startswith("field 'partition_count' must be int")


def test_bool_is_not_an_int_but_int_enums_are():
    assert "must be int" in invalid({"n": True}, {"n": int})

    class Level(enum.IntEnum):
        A = 1

    assert expect({"n": Level.A}, {"n": int}) == {"n": Level.A}
    assert expect({"flag": False}, {"flag": bool}) == {"flag": False}


def test_bytes_fields_accept_bytes_only():
    assert expect({"k": b"x"}, {"k": bytes}) == {"k": b"x"}
    assert "must be bytes, not str" in invalid({"k": "x"}, {"k": bytes})
    assert "must be bytes" in invalid({"k": bytearray(b"x")}, {"k": bytes})
    assert "must be str, not bytes" in invalid({"k": b"x"}, {"k": str})


def test_float_accepts_int_and_unions_with_none():
    assert expect({"t": 3}, {"t": float}) == {"t": 3}
    assert expect({"v": None}, {"v": (bytes, None)}) == {"v": None}
    assert "must be bytes or None, not int" in invalid({"v": 1}, {"v": (bytes, None)})
    assert expect({"any": [1]}, {"any": object}) == {"any": [1]}


def test_optional_fields_and_defaults():
    fields = {"name": str}
    optional = {"reserve_seconds": int, "envs": dict}
    assert expect({"name": "t"}, fields, optional) == {"name": "t"}
    with_default = expect({"name": "t"}, fields, optional, defaults={"reserve_seconds": 7})
    assert with_default == {"name": "t", "reserve_seconds": 7}
    assert expect({"name": "t", "envs": {"a": "b"}}, fields, optional) == {"name": "t", "envs": {"a": "b"}}
    assert "field 'envs' must be map, not list" in invalid({"name": "t", "envs": []}, fields, optional=optional)


def test_body_must_be_a_map():
    assert invalid([1, 2], {"a": int}) == "request body must be a map, not list"
    assert invalid(None, {}) == "request body must be a map, not None"
