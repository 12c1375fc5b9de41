"""Wire mapping of replication messages and shared types; the lease and the failure detector."""

from __future__ import annotations

import math

import msgpack
import pytest

from pegasus_node.replication.config import (
    ConfigChangeRequest,
    PartitionConfiguration,
    PartitionStatus,
    ReplicaReport,
    ReplicationOptions,
    RequestKind,
    WireFormatError,
)
from pegasus_node.replication.lease import FailureDetector, LeaseSettings, ReplicaLease
from pegasus_node.replication.messages import (
    GroupCheck,
    GroupCheckReply,
    LearnRequest,
    LearnResponse,
    Prepare,
    PrepareAck,
    StaleBallot,
    decode_message,
)
from pegasus_node.storage.mutation import Mutation
from pegasus_node.storage.operations import put_op

CONFIG = PartitionConfiguration((1, 2), 7, "a:1", ("b:1", "c:1"), ("d:1",), 40)
MUTATION = Mutation(7, 41, 40, 123456, (put_op(b"h", b"s", b"v"), put_op(b"h", b"t", b"w")))

MESSAGES = [
    Prepare((1, 2), 7, "a:1", CONFIG, MUTATION, 40),
    PrepareAck((1, 2), 7, "b:1", 41),
    GroupCheck((1, 2), 7, "a:1", CONFIG, 40, 41),
    GroupCheckReply((1, 2), 7, "d:1", PartitionStatus.POTENTIAL_SECONDARY, 0, True),
    LearnRequest((1, 2), 7, "d:1", 3, 12),
    LearnResponse((1, 2), 7, "a:1", CONFIG, 3, 40, 30, b"checkpoint-bytes", (MUTATION,)),
    LearnResponse((1, 2), 7, "a:1", CONFIG, 4, 40, 0, None, ()),
    StaleBallot((1, 2), 8, "b:1", PartitionConfiguration((1, 2), 8, "b:1")),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_survive_msgpack(message) -> None:
    wire = msgpack.unpackb(msgpack.packb(message.to_wire(), use_bin_type=True), raw=False)
    decoded = decode_message(wire)
    assert type(decoded) is type(message)
    assert decoded.to_wire() == message.to_wire()


def test_configuration_and_reports_use_the_rpc_field_names() -> None:
    assert CONFIG.to_wire() == {"gpid": [1, 2], "ballot": 7, "primary": "a:1", "secondaries": ["b:1", "c:1"],
                                "learners": ["d:1"], "last_committed_decree": 40}
    assert PartitionConfiguration.from_wire(CONFIG.to_wire()) == CONFIG
    report = ReplicaReport((1, 2), 7, PartitionStatus.SECONDARY, 40, 41)
    assert ReplicaReport.from_wire(report.to_wire()) == report
    request = ConfigChangeRequest((1, 2), 7, RequestKind.UPGRADE, "d:1", "a:1")
    assert ConfigChangeRequest.from_wire(request.to_wire()) == request
    assert CONFIG.role_of("d:1") is PartitionStatus.POTENTIAL_SECONDARY
    assert CONFIG.role_of("z:1") is PartitionStatus.INACTIVE


@pytest.mark.parametrize("bad, words", [
    ([1, 2], "must be a map"),
    ({"type": "nope"}, "unknown replication message type"),
    ({"type": ["prepare"]}, "unknown replication message type"),
    ({"type": "prepare_ack", "gpid": [1, 2], "ballot": 1, "sender": "b"}, "missing field 'acked'"),
    ({"type": "prepare_ack", "gpid": [1], "ballot": 1, "sender": "b", "acked": 1}, "gpid"),
    ({"type": "prepare_ack", "gpid": [1, 2], "ballot": "1", "sender": "b", "acked": 1}, "'ballot'"),
    ({"type": "prepare_ack", "gpid": [1, 2], "ballot": True, "sender": "b", "acked": 1}, "'ballot'"),
    ({**MESSAGES[0].to_wire(), "mutation": b"\xc1garbage"}, "undecodable mutation"),
    ({**MESSAGES[0].to_wire(), "mutation": Mutation(1, 5, 5, 0, ()).encode()}, "impossible"),
    ({**MESSAGES[0].to_wire(), "config": {**CONFIG.to_wire(), "secondaries": ["a:1"]}}, "appears twice"),
    ({**MESSAGES[3].to_wire(), "status": "BOSS"}, "unknown status"),
])
def test_malformed_messages_are_clear_errors(bad, words) -> None:
    with pytest.raises(WireFormatError, match=words):
        decode_message(bad)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="max_inflight_mutations"):
        ReplicationOptions(max_inflight_mutations=0)
    with pytest.raises(ValueError, match="group_check_seconds"):
        ReplicationOptions(group_check_seconds=0)


def test_lease_runs_from_the_send_time_of_the_acknowledged_beacon() -> None:
    lease = ReplicaLease(4.0)
    assert not lease.is_valid(0.0)
    assert lease.on_beacon_acked(send_time=10.0) == 14.0  # acknowledged at, say, 13.9: still from 10.0
    assert lease.is_valid(13.99) and not lease.is_valid(14.0)
    lease.on_beacon_acked(send_time=9.0)  # a late acknowledgement of an older beacon never shortens it
    assert lease.valid_until == 14.0 and lease.remaining(13.0) == 1.0


def test_failure_detector_counts_a_server_dead_after_grace() -> None:
    detector = FailureDetector(grace_seconds=5.0)
    detector.on_beacon("a", 100.0)
    detector.expect("b", 100.0)
    assert detector.alive(104.9) == frozenset({"a", "b"})
    detector.on_beacon("a", 103.0)
    assert detector.alive(105.0) == frozenset({"a"})
    assert not detector.is_alive("c", 0.0) and math.isinf(detector.beacon_age("c", 0.0))


def test_lease_settings_need_grace_above_lease() -> None:
    assert LeaseSettings() == LeaseSettings(1.0, 4.0, 5.0)
    with pytest.raises(ValueError, match="grace"):
        LeaseSettings(1.0, 4.0, 4.0)


def test_old_primary_stops_before_the_meta_declares_it_dead() -> None:
    """The lease argument: whatever the delays, the last acknowledged beacon was received by the meta server
    no earlier than it was sent, so lease end (send + lease) < death (receive + grace)."""
    settings = LeaseSettings()
    lease, detector = ReplicaLease(settings.lease_seconds), FailureDetector(settings.grace_seconds)
    for send, transit in [(0.0, 0.0), (1.0, 2.5), (2.0, 0.01)]:  # beacons sent at `send`, arriving later
        detector.on_beacon("a", send + transit)
        lease.on_beacon_acked(send)  # however late the acknowledgement comes back
    death = min(t for t in (x / 100 for x in range(0, 2000)) if not detector.is_alive("a", t))
    assert lease.valid_until < death
