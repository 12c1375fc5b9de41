"""The fail-point registry: parsing, evaluation, and its operator interfaces."""

from __future__ import annotations

import random

import pytest

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.fail_points import FailPointError, FailPointRegistry
from pegasus_node.twisted_rpc import DROP


def test_off_by_default_and_from_ini_spec():
    assert FailPointRegistry().before_send("request", "127.0.0.1:1", "rrdb.get") is None
    registry = FailPointRegistry("send_to:127.0.0.1:34802=drop; handler:rrdb.put=delay(250)")
    assert registry.snapshot() == {"handler:rrdb.put": "delay(250)", "send_to:127.0.0.1:34802": "drop"}
    assert registry.before_send("request", "127.0.0.1:34802", "x") == DROP
    assert registry.before_send("request", "127.0.0.1:34803", "x") is None
    assert registry.before_send("reply", "127.0.0.1:5555", "rrdb.put") == ("delay", 0.25)
    assert registry.before_send("reply", "127.0.0.1:5555", "rrdb.get") is None


def test_wildcard_probability_and_clear():
    registry = FailPointRegistry(rng=random.Random(7))
    registry.set("send_to:*", "50%drop")
    fired = sum(registry.before_send("request", "h:1", "m") == DROP for _ in range(1000))
    assert 400 < fired < 600
    registry.set("send_to:*", "off")
    assert registry.snapshot() == {}
    registry.set("wal.fsync", "error")
    with pytest.raises(PegasusError) as info:
        registry.before_wal_write()
    assert info.value.code == ErrorCode.ERR_DISK_IO
    registry.clear()
    registry.before_wal_write()


@pytest.mark.parametrize("name,action", [
    ("bogus", "drop"), ("send_to:nohostport", "drop"), ("wal.fsync", "explode"), ("wal.fsync", "0%drop"),
    ("wal.fsync", "delay(x)"),
])
def test_bad_specs_are_clear_errors(name, action):
    with pytest.raises(FailPointError) as info:
        FailPointRegistry().set(name, action)
    assert info.value.code == ErrorCode.ERR_INVALID_PARAMETERS and info.value.message


def test_remote_command_and_http_interfaces():
    registry = FailPointRegistry()
    assert registry.remote_command(["set", "wal.fsync", "delay(10)"]) == {"wal.fsync": "delay(10)"}
    assert registry.remote_command(["list"]) == {"wal.fsync": "delay(10)"}
    assert registry.http({"clear": ["wal.fsync"]}) == {"fail_points": {}}
    assert registry.http({"set": ["send_to:*"], "action": ["drop"]}) == {"fail_points": {"send_to:*": "drop"}}
    with pytest.raises(FailPointError, match="usage"):
        registry.remote_command(["set", "only-name"])
