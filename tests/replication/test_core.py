"""ReplicaCore unit tests: staged interleavings of the real core (harness.py)."""

from __future__ import annotations

from pegasus_node.errors import ErrorCode
from pegasus_node.replication import effects as fx
from pegasus_node.replication.config import PartitionStatus, ReplicationOptions
from pegasus_node.replication.core import ReplicaCore
from pegasus_node.replication.messages import GroupCheck, Prepare, PrepareAck, StaleBallot
from pegasus_node.storage.mutation import Mutation
from pegasus_node.storage.operations import incr_op, put_op
from tests.replication.harness import GPID, Harness, config


def three() -> Harness:
    h = Harness(["A", "B", "C"])
    h.configure(config(1, "A", ("B", "C")))
    return h


def test_commit_waits_until_every_secondary_logged_durably() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.deliver(kind=Prepare)
    h.sync("A", "B")
    h.deliver(kind=PrepareAck)
    assert h.replies == [] and h.cores["A"].committed == 0  # C has not fsynced yet
    h.sync("C")
    h.deliver(kind=PrepareAck)
    [reply] = h.replies
    assert (reply.request_id, reply.error, reply.decree, reply.results) == ("w1", ErrorCode.ERR_OK, 1, ({},))
    assert h.value("A") == b"v1"


def test_the_primary_own_log_must_be_durable_too() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.deliver(kind=Prepare)
    h.sync("B", "C")
    h.deliver(kind=PrepareAck)
    assert h.replies == []
    h.sync("A")
    assert [r.request_id for r in h.replies] == ["w1"]


def test_commits_and_applies_in_decree_order_with_pipelining() -> None:
    h = three()
    for i in range(5):
        h.write("A", f"w{i}", f"v{i}".encode())
    assert h.cores["A"].log.last == 5  # five mutations in flight at once
    h.settle()
    assert h.applied["A"] == [1, 2, 3, 4, 5]
    assert [r.decree for r in h.replies] == [1, 2, 3, 4, 5]
    assert h.value("A") == b"v4"


def test_concurrent_writes_are_folded_into_one_mutation_when_the_window_is_full() -> None:
    h = Harness(["A", "B"], ReplicationOptions(max_inflight_mutations=1, max_batch_ops=2))
    h.configure(config(1, "A", ("B",)))
    for i in range(4):
        h.write("A", f"w{i}", f"v{i}".encode())
    assert [len(m.writes) for m in h.appended["A"]] == [1]  # w1..w3 wait for the window
    h.settle()
    assert [len(m.writes) for m in h.appended["A"]] == [1, 2, 1]  # capped at 2 ops per mutation
    assert sorted((r.request_id, r.decree) for r in h.replies) == [("w0", 1), ("w1", 2), ("w2", 2), ("w3", 3)]


def test_each_request_gets_its_own_slice_of_the_apply_results() -> None:
    h = Harness(["A"], ReplicationOptions())
    h.configure(config(1, "A"))
    core = h.cores["A"]
    h.run("A", core.on_client_write(0, "a", [incr_op(b"n", b"s", 5)], flush=False))
    h.run("A", core.on_client_write(0, "b", [put_op(b"x", b"s", b"1"), incr_op(b"n", b"s", 2)], flush=False))
    h.run("A", core.flush(0))
    assert len(h.appended["A"]) == 1
    h.sync("A")
    assert {r.request_id: r.results for r in h.replies} == {"a": ({"value": 5},), "b": ({}, {"value": 7})}


def test_commit_point_reaches_secondaries_by_group_check() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.settle()
    assert h.cores["A"].committed == 1 and h.cores["B"].committed == 0
    h.tick(h.options.group_check_seconds)
    assert h.deliver(kind=GroupCheck) == 2
    assert h.cores["B"].committed == h.cores["C"].committed == 1
    assert h.value("B") == h.value("C") == b"v1"


def test_commit_point_rides_on_the_next_prepare() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.settle()
    h.write("A", "w2", b"v2")
    h.deliver(kind=Prepare)
    assert h.cores["B"].committed == 1


def test_bad_client_writes_are_refused_and_non_primaries_refuse_writes() -> None:
    h = three()
    assert h.run("A", h.cores["A"].on_client_write(0, "x", []))[0].error == ErrorCode.ERR_INVALID_PARAMETERS
    assert h.run("A", h.cores["A"].on_client_write(0, "y", ["put"]))[0].error == ErrorCode.ERR_INVALID_PARAMETERS
    assert h.run("A", h.cores["A"].on_client_write(0, "z", [{"v": object()}]))[0].error == \
        ErrorCode.ERR_INVALID_PARAMETERS
    assert h.write("B", "w", b"v")[0].error == ErrorCode.ERR_INVALID_STATE


def test_lease_gates_writes_and_reads() -> None:
    h = Harness(["A", "B"])
    h.configure(config(1, "A", ("B",)), lease=10.0)
    core = h.cores["A"]
    assert core.check_read(5.0) == ErrorCode.ERR_OK
    assert core.check_read(10.0) == ErrorCode.ERR_INVALID_STATE
    h.now = 11.0
    assert h.write("A", "late", b"v")[0].error == ErrorCode.ERR_INVALID_STATE
    assert not core.is_serving(11.0)
    h.run("A", core.on_lease(11.0, 20.0))
    assert core.is_serving(11.0) and core.check_read(11.0) == ErrorCode.ERR_OK


def test_older_ballot_is_rejected_and_the_old_primary_steps_down() -> None:
    h = Harness(["A", "B"], ReplicationOptions(max_inflight_mutations=1))
    h.configure(config(1, "A", ("B",)))
    h.write("A", "inflight", b"v1")
    h.write("A", "queued", b"v2")
    h.run("B", h.cores["B"].on_config(0, config(2, "B")))  # the meta server moved on; A does not know
    h.deliver(kind=Prepare)  # A's prepare at ballot 1 reaches B
    [(to, message)] = [(t, m) for t, m in h.inbox if isinstance(m, StaleBallot)]
    assert to == "A" and message.config.ballot == 2
    h.deliver(kind=StaleBallot)
    a = h.cores["A"]
    assert a.status is PartitionStatus.INACTIVE and a.ballot == 2
    assert {r.request_id: r.error for r in h.replies} == {
        "inflight": ErrorCode.ERR_TIMEOUT,  # prepared: it may still commit under B
        "queued": ErrorCode.ERR_INVALID_STATE,  # never written anywhere
    }


def test_a_newer_configuration_carried_by_a_prepare_is_adopted() -> None:
    h = Harness(["A", "B", "C"])
    h.configure(config(1, "A", ("B", "C")))
    h.run("A", h.cores["A"].on_config(0, config(2, "A", ("B", "C", "D"))))
    assert h.cores["B"].ballot == 1
    h.write("A", "w", b"v")
    h.deliver(to="B", kind=Prepare)
    assert h.cores["B"].ballot == 2 and h.cores["B"].config.secondaries == ("B", "C", "D")


def test_new_primary_reproposes_what_was_prepared_and_serves_reads_after() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.settle()
    h.write("A", "w2", b"v2")
    h.deliver(to="B", kind=Prepare)
    h.deliver(to="C", kind=Prepare, drop=True)  # A dies with w2 on B only
    h.sync("B")
    h.inbox.clear()
    b = h.cores["B"]
    h.configure(config(2, "B", ("C",)), to=["B", "C"])
    assert b.check_read(h.now) == ErrorCode.ERR_INVALID_STATE  # reconciling
    h.propagate()
    assert b.committed == 2 and h.value("B") == h.value("C") == b"v2"
    assert b.check_read(h.now) == ErrorCode.ERR_OK


def test_secondary_replaces_a_stale_tail_the_new_primary_does_not_have() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.settle()
    h.write("A", "stale", b"stale")
    h.deliver(to="B", kind=Prepare)
    h.deliver(kind=Prepare, drop=True)
    h.sync("A", "B")
    h.inbox.clear()  # A dies; B logged decree 2, C never saw it
    assert h.cores["B"].log.get(2).writes[0]["v"] == b"stale"
    h.configure(config(2, "C", ("B",)), to=["B", "C"])
    h.settle()
    h.write("C", "fresh", b"fresh")
    h.deliver(kind=Prepare)
    b = h.cores["B"]
    assert b.log.get(2).writes[0]["v"] == b"fresh" and b.log.get(2).ballot == 2
    assert b.follower.ack_point == 1  # the replacement is not durable yet: nothing acknowledged beyond 1
    h.propagate()
    assert h.value("B") == h.value("C") == b"fresh"
    assert [r.request_id for r in h.replies if r.error == ErrorCode.ERR_OK] == ["w1", "fresh"]


def test_reproposal_of_the_same_mutation_is_not_rewritten() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.deliver(kind=Prepare)
    h.sync()
    h.inbox.clear()  # A dies before committing; both secondaries hold decree 1
    before = len(h.appended["C"])
    h.configure(config(2, "B", ("C",)), to=["B", "C"])
    h.propagate()
    assert len(h.appended["C"]) == before  # same proposal: validated without a second write
    assert h.cores["B"].committed == 1 and h.value("C") == b"v1"


def test_restarted_replica_refuses_to_lead_at_its_persisted_ballot() -> None:
    core = ReplicaCore("A", GPID, ballot=3)
    assert core.on_config(0, config(3, "A", ("B",))) == []
    assert core.status is PartitionStatus.INACTIVE
    assert core.report().status is PartitionStatus.INACTIVE and core.report().ballot == 3
    effects = core.on_config(0, config(4, "A", ("B",)))
    assert core.status is PartitionStatus.PRIMARY
    assert effects[0] == fx.PersistBallot(GPID, 4)  # persisted before anything else


def test_restarted_replica_rejoins_as_secondary_at_the_same_ballot() -> None:
    core = ReplicaCore("B", GPID, ballot=3)
    core.on_config(0, config(3, "A", ("B",)))
    assert core.status is PartitionStatus.SECONDARY


def test_recovery_applies_only_what_the_log_shows_committed() -> None:
    log = [Mutation(1, 1, 0, 10, (put_op(b"k", b"s", b"1"),)), Mutation(1, 2, 1, 11, (put_op(b"k", b"s", b"2"),)),
           Mutation(1, 3, 2, 12, (put_op(b"k", b"s", b"3"),))]
    core = ReplicaCore("A", GPID, ballot=1, log=log)
    assert [e.mutation.decree for e in core.start(0)] == [1, 2]
    assert core.committed == 2 and core.log.last == 3


def test_silent_secondary_is_reported_to_the_meta_server() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.deliver(to="B", kind=Prepare)
    h.deliver(to="C", kind=Prepare, drop=True)
    h.sync("A", "B")
    h.deliver(kind=PrepareAck)
    for _ in range(int(h.options.prepare_timeout_seconds / h.options.prepare_retry_seconds) + 2):
        h.tick(h.options.prepare_retry_seconds)
        h.deliver(to="C", drop=True)
        h.deliver()
        h.sync("B")
    removals = {(r.request.kind.value, r.request.node, r.request.ballot) for r in h.reports}
    assert removals == {("remove", "C", 1)}


def test_unacknowledged_prepares_are_resent() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.deliver(to="C", kind=Prepare, drop=True)
    h.settle()
    assert h.replies == []
    h.tick(h.options.prepare_retry_seconds)
    h.settle()
    assert [r.request_id for r in h.replies] == ["w1"]


def test_local_error_stops_the_replica() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    effects = h.run("A", h.cores["A"].on_local_error(0, "fsync failed"))
    assert h.cores["A"].status is PartitionStatus.ERROR
    assert [r.error for r in effects if isinstance(r, fx.ReplyClient)] == [ErrorCode.ERR_TIMEOUT]
    assert h.cores["A"].on_config(0, config(9, "A")) == []
