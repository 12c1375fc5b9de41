"""The fast paths of the replication wire codec (decoded-configuration cache, cached encodings) are transparent:
same values, same errors as a full decode."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from pegasus_node.replication import config as config_module
from pegasus_node.replication.config import PartitionConfiguration, WireFormatError
from pegasus_node.errors import ErrorCode
from pegasus_node.replication.messages import GroupCheck, LearnRequest, Prepare, ReadIndexReply, decode_message
from pegasus_node.storage.mutation import Mutation
from pegasus_node.storage.operations import put_op

CONFIG = PartitionConfiguration((1, 2), 7, "a:1", ("b:1", "c:1"), ("d:1",), 40)
MUTATION = Mutation(7, 41, 40, 123456, (put_op(b"h", b"s", b"v" * 100), put_op(b"h", b"t", b"w")))


def over_the_wire(data):
    return msgpack.unpackb(msgpack.packb(data, use_bin_type=True), raw=False)


def test_an_equal_configuration_dict_decodes_to_the_same_configuration() -> None:
    first = PartitionConfiguration.from_wire(over_the_wire(CONFIG.to_wire()))
    assert first == CONFIG
    assert PartitionConfiguration.from_wire(over_the_wire(CONFIG.to_wire())) is first


ONES = PartitionConfiguration((1, 1), 1, "a:1", ("b:1",), (), 0)


@pytest.mark.parametrize("config, change, words", [
    (ONES, {"ballot": True}, "'ballot'"),
    (CONFIG, {"ballot": 7.0}, "'ballot'"),
    (ONES, {"gpid": [1, True]}, "gpid"),
    (ONES, {"gpid": [1.0, 1]}, "gpid"),
    (CONFIG, {"last_committed_decree": 40.0}, "last_committed_decree"),
    (ONES, {"last_committed_decree": False}, "last_committed_decree"),
])
def test_values_equal_to_a_cached_configuration_are_still_validated(config, change, words) -> None:
    assert PartitionConfiguration.from_wire(config.to_wire()) == config
    # True == 1 and 7.0 == 7: a lookup by equality alone would take this for the cached valid configuration
    assert {**config.to_wire(), **change} == config.to_wire()
    with pytest.raises(WireFormatError, match=words):
        PartitionConfiguration.from_wire({**config.to_wire(), **change})
    message = {**GroupCheck(config.gpid, config.ballot, "a:1", config, 0, 1).to_wire(),
               "config": {**config.to_wire(), **change}}
    with pytest.raises(WireFormatError, match=words):
        decode_message(message)


def test_optional_and_extra_configuration_fields_still_decode() -> None:
    PartitionConfiguration.from_wire(CONFIG.to_wire())
    bare = {"gpid": [1, 2], "ballot": 7, "primary": "a:1", "secondaries": ["b:1", "c:1"]}
    assert PartitionConfiguration.from_wire(bare) == PartitionConfiguration((1, 2), 7, "a:1", ("b:1", "c:1"))
    assert PartitionConfiguration.from_wire({**CONFIG.to_wire(), "app_name": "t"}) == CONFIG
    assert PartitionConfiguration.from_wire({**CONFIG.to_wire(), "gpid": (1, 2)}) == CONFIG


def test_changing_a_decoded_dict_does_not_change_later_decodes() -> None:
    wire = CONFIG.to_wire()
    assert PartitionConfiguration.from_wire(wire) == CONFIG
    wire["secondaries"].append("e:1")
    assert PartitionConfiguration.from_wire(wire).secondaries == ("b:1", "c:1", "e:1")
    assert PartitionConfiguration.from_wire(CONFIG.to_wire()) == CONFIG


def test_the_decoded_configuration_cache_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(config_module, "_DECODED_CONFIGS_LIMIT", 8)
    monkeypatch.setattr(config_module, "_decoded_configs", {})
    for ballot in range(1, 30):
        config = dataclasses.replace(CONFIG, ballot=ballot)
        assert PartitionConfiguration.from_wire(config.to_wire()) == config
        assert len(config_module._decoded_configs) <= 8


def test_to_wire_is_a_new_dict_and_shared_wire_equals_it() -> None:
    config = PartitionConfiguration((1, 2), 7, "a:1", ("b:1",))
    wire = config.to_wire()
    del wire["last_committed_decree"]  # as the meta server does before persisting a configuration
    assert config.to_wire() is not wire and "last_committed_decree" in config.to_wire()
    assert config.shared_wire() == config.to_wire()
    assert config.shared_wire() is config.shared_wire()
    assert Prepare((1, 2), 7, "a:1", config, MUTATION, 40).to_wire()["config"] == config.to_wire()


def test_a_mutation_encodes_once_and_keeps_the_encoding_it_was_decoded_from() -> None:
    fresh = dataclasses.replace(MUTATION)  # not encoded yet
    expected = msgpack.packb([7, 41, 40, 123456, list(MUTATION.writes)], use_bin_type=True)
    assert fresh.encode() == expected
    assert fresh.encode() is fresh.encode()
    decoded = Mutation.decode(expected)
    assert decoded == MUTATION and decoded.encode() is expected
    assert repr(decoded) == repr(MUTATION)
    reballoted = dataclasses.replace(decoded, ballot=9)
    assert Mutation.decode(reballoted.encode()).ballot == 9


@pytest.mark.parametrize("change, words", [
    ({"mutation": Mutation(True, 5, 4, 0, ()).encode()}, "must be integers"),
    ({"mutation": Mutation(1, 5.0, 4, 0, ()).encode()}, "must be integers"),
    ({"mutation": "text"}, "'mutation' has the wrong type"),
    ({"committed": 40.0}, "'committed' has the wrong type"),
    ({"sender": b"a:1"}, "'sender' has the wrong type"),
    ({"gpid": [1, 2.0]}, "gpid"),
    ({"config": [CONFIG.to_wire()]}, "'config' has the wrong type"),
])
def test_prepare_fields_off_the_fast_path_get_the_full_validation(change, words) -> None:
    wire = over_the_wire(Prepare((1, 2), 7, "a:1", CONFIG, MUTATION, 40).to_wire())
    assert decode_message(wire) == Prepare((1, 2), 7, "a:1", CONFIG, MUTATION, 40)
    with pytest.raises(WireFormatError, match=words):
        decode_message({**wire, **change})


def test_a_field_with_a_default_may_be_missing_as_from_an_older_peer() -> None:
    new = LearnRequest((1, 0), 3, "a:1", 7, 10, by_reference=True)
    assert decode_message(msgpack.unpackb(msgpack.packb(new.to_wire()))) == new
    old = {key: value for key, value in new.to_wire().items() if key != "by_reference"}
    assert decode_message(old) == dataclasses.replace(new, by_reference=False)
    with pytest.raises(WireFormatError, match="by_reference"):
        decode_message({**old, "by_reference": "yes"})
    with pytest.raises(WireFormatError, match="committed"):
        decode_message({key: value for key, value in old.items() if key != "committed"})


def test_a_read_index_reply_round_trips_and_an_unknown_error_code_is_refused() -> None:
    reply = ReadIndexReply((1, 0), 3, "a:1", 7, 42, ErrorCode.ERR_OK)
    wire = msgpack.unpackb(msgpack.packb(reply.to_wire()))
    assert wire["error"] == 0 and decode_message(wire) == reply
    with pytest.raises(WireFormatError, match="unknown error code 999"):
        decode_message({**wire, "error": 999})
