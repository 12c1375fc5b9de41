"""Follower reads (follower_reads.py): a secondary serves a read once its applied state reaches the commit
point its primary gave after the read arrived."""

from __future__ import annotations

from pegasus_node.errors import ErrorCode
from pegasus_node.replication.config import ReplicationOptions
from pegasus_node.replication.messages import (
    GroupCheck,
    Prepare,
    PrepareAck,
    ReadIndexReply,
    ReadIndexRequest,
    StaleBallot,
)
from tests.replication.harness import Harness, config


def three() -> Harness:
    h = Harness(["A", "B", "C"])
    h.configure(config(1, "A", ("B", "C")))
    return h


def answers(h: Harness) -> list[tuple[str, object, ErrorCode, bytes | None]]:
    return [(address, reply.read_id, reply.error, value) for address, reply, value in h.reads]


def committed_but_not_applied_on_b(h: Harness) -> None:
    """A write the primary committed, applied and acknowledged, whose commit point B has not heard yet."""
    h.write("A", "w1", b"v1")
    h.settle()
    assert [r.error for r in h.replies] == [ErrorCode.ERR_OK]
    assert h.cores["A"].committed == 1 and h.cores["B"].applied == 0 and h.value("B") is None


def test_a_secondary_serves_an_acknowledged_write_it_had_not_applied_yet() -> None:
    h = three()
    committed_but_not_applied_on_b(h)
    h.follower_read("B", "r1")
    assert h.reads == []  # it asks the primary first
    assert h.cores["B"].reads.pending == 1
    assert h.deliver(to="A", kind=ReadIndexRequest) == 1
    assert h.deliver(to="B", kind=ReadIndexReply) == 1
    assert answers(h) == [("B", "r1", ErrorCode.ERR_OK, b"v1")]
    assert h.cores["B"].reads.pending == 0
    assert h.cores["B"].applied == 1


def test_the_reads_of_one_turn_share_one_request_to_the_primary() -> None:
    h = three()
    committed_but_not_applied_on_b(h)
    for i in range(3):
        h.follower_read("B", f"r{i}", flush=False)
    assert h.run("B", h.cores["B"].flush(h.now))  # the edge's end of turn
    assert sum(isinstance(m, ReadIndexRequest) for _, m in h.inbox) == 1
    h.settle()
    assert answers(h) == [("B", f"r{i}", ErrorCode.ERR_OK, b"v1") for i in range(3)]


def test_a_write_not_yet_committed_is_not_read_on_a_secondary_that_logged_it() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.deliver(kind=Prepare)
    h.sync("B")  # B holds w1 durably, but C has not: the primary cannot commit it yet
    h.follower_read("B", "r1")
    h.deliver(to="A", kind=ReadIndexRequest)
    h.deliver(to="B", kind=ReadIndexReply)
    assert answers(h) == [("B", "r1", ErrorCode.ERR_OK, None)]
    assert h.replies == []


def test_a_read_index_ahead_of_the_secondary_log_waits_for_the_prepare() -> None:
    h = three()
    h.write("A", "w1", b"v1")
    h.deliver(to="C", kind=Prepare)
    h.deliver(to="B", kind=Prepare)
    h.sync("A", "B", "C")
    h.deliver(kind=PrepareAck)
    assert h.cores["A"].committed == 1
    h.write("A", "w2", b"v2")
    h.deliver(to="B", kind=Prepare, drop=True)
    h.deliver(to="C", kind=Prepare)
    h.follower_read("B", "r1")
    h.deliver(to="A", kind=ReadIndexRequest)
    h.deliver(to="B", kind=ReadIndexReply)
    assert answers(h) == [("B", "r1", ErrorCode.ERR_OK, b"v1")]  # index 1: B has decree 1 logged
    h.sync("A", "C")
    h.deliver(to="A", kind=PrepareAck)
    h.tick(h.options.prepare_retry_seconds)  # B gets decree 2 again; once logged, A commits it
    h.settle()
    assert h.cores["A"].committed == 2
    h.follower_read("B", "r2")
    h.settle()
    assert answers(h)[-1] == ("B", "r2", ErrorCode.ERR_OK, b"v2")


def test_a_primary_without_a_lease_gives_no_read_index() -> None:
    h = three()
    committed_but_not_applied_on_b(h)
    h.run("A", h.cores["A"].on_lease(h.now, h.now - 1))
    h.follower_read("B", "r1")
    h.settle()
    assert answers(h) == [("B", "r1", ErrorCode.ERR_INVALID_STATE, None)]
    assert h.cores["B"].applied == 0


def test_only_a_secondary_waits_for_a_read_index() -> None:
    h = Harness(["A", "B", "C", "L"])
    h.configure(config(1, "A", ("B", "C"), ("L",)))
    h.write("A", "w1", b"v1")
    h.settle()
    h.follower_read("A", "on-primary")
    h.follower_read("L", "on-learner")
    assert answers(h) == [("A", "on-primary", ErrorCode.ERR_OK, b"v1"),
                          ("L", "on-learner", ErrorCode.ERR_INVALID_STATE, None)]
    assert not any(isinstance(m, ReadIndexRequest) for _, m in h.inbox)


def test_a_read_gives_up_at_its_deadline_when_the_primary_does_not_answer() -> None:
    h = three()
    h.follower_read("B", "r1", deadline=h.now + 0.5)
    assert h.deliver(kind=ReadIndexRequest, drop=True) == 1
    h.tick(0.4)
    assert h.reads == []
    h.tick(0.2)
    assert answers(h) == [("B", "r1", ErrorCode.ERR_TIMEOUT, None)]
    h.deliver()
    assert len(h.reads) == 1


def test_a_read_without_a_deadline_gets_the_default_one() -> None:
    h = Harness(["A", "B"], ReplicationOptions(follower_read_timeout_seconds=2.0))
    h.configure(config(1, "A", ("B",)))
    h.follower_read("B", "r1")
    h.deliver(kind=ReadIndexRequest, drop=True)
    h.tick(1.9)
    assert h.reads == []
    h.tick(0.2)
    assert answers(h) == [("B", "r1", ErrorCode.ERR_TIMEOUT, None)]


def test_a_new_configuration_fails_the_reads_in_flight_and_late_answers_are_ignored() -> None:
    h = three()
    committed_but_not_applied_on_b(h)
    h.follower_read("B", "r1")
    h.deliver(to="A", kind=ReadIndexRequest)
    h.configure(config(2, "A", ("B",)), to=["B"])
    assert answers(h) == [("B", "r1", ErrorCode.ERR_INVALID_STATE, None)]
    h.deliver(to="B", kind=ReadIndexReply)  # the answer to the old request
    assert len(h.reads) == 1


def test_a_removed_secondary_is_refused_and_told_the_new_configuration() -> None:
    h = three()
    committed_but_not_applied_on_b(h)
    h.configure(config(2, "A", ("C",)), to=["A", "C"])  # B was removed and does not know it yet
    h.follower_read("B", "r1")
    h.deliver(to="A", kind=ReadIndexRequest)
    assert any(isinstance(m, StaleBallot) and target == "B" for target, m in h.inbox)
    h.deliver(to="B")
    assert answers(h) == [("B", "r1", ErrorCode.ERR_INVALID_STATE, None)]
    assert h.cores["B"].ballot == 2


def test_a_read_index_reply_carries_the_commit_point_like_a_group_check() -> None:
    h = three()
    committed_but_not_applied_on_b(h)
    h.follower_read("B", "r1")
    h.settle()
    assert h.cores["B"].committed == 1
    assert h.deliver(kind=GroupCheck) == 0  # no group check was needed


def test_reads_wait_while_a_request_is_out_then_share_the_next_one() -> None:
    h = three()
    committed_but_not_applied_on_b(h)
    h.follower_read("B", "r1")
    assert sum(isinstance(m, ReadIndexRequest) for _, m in h.inbox) == 1
    h.follower_read("B", "r2")
    h.follower_read("B", "r3")
    assert sum(isinstance(m, ReadIndexRequest) for _, m in h.inbox) == 1  # r2 and r3 wait for r1's answer
    h.deliver(to="A", kind=ReadIndexRequest)
    h.deliver(to="B", kind=ReadIndexReply)
    assert [a[1] for a in answers(h)] == ["r1"]
    assert sum(isinstance(m, ReadIndexRequest) for _, m in h.inbox) == 1  # then one request for both
    h.settle()
    assert answers(h) == [("B", r, ErrorCode.ERR_OK, b"v1") for r in ("r1", "r2", "r3")]


def test_a_lost_request_holds_the_next_reads_only_until_its_own_expire() -> None:
    h = three()
    h.follower_read("B", "r1", deadline=h.now + 0.5)
    h.deliver(kind=ReadIndexRequest, drop=True)
    h.follower_read("B", "r2", deadline=h.now + 2.0)
    assert not any(isinstance(m, ReadIndexRequest) for _, m in h.inbox)  # r1's request is still out
    h.tick(0.6)  # r1 expires, and with it the lost request: r2's goes
    assert [a[1:3] for a in answers(h)] == [("r1", ErrorCode.ERR_TIMEOUT)]
    assert sum(isinstance(m, ReadIndexRequest) for _, m in h.inbox) == 1
    h.settle()
    assert [a[1:3] for a in answers(h)] == [("r1", ErrorCode.ERR_TIMEOUT), ("r2", ErrorCode.ERR_OK)]
