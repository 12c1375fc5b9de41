"""Learning: a POTENTIAL_SECONDARY catches up from the primary's memory, WAL or checkpoint while it already
receives new prepares, and is upgraded only once it provably holds everything committed."""

from __future__ import annotations

from pegasus_node.errors import ErrorCode
from pegasus_node.replication import effects as fx
from pegasus_node.replication.config import PartitionStatus, ReplicationOptions, RequestKind
from pegasus_node.replication.messages import LearnRequest, LearnResponse, Prepare, PrepareAck, decode_message
from tests.replication.harness import Harness, config


def grown(options: ReplicationOptions, writes: int = 5) -> Harness:
    """A and B replicate ``writes`` writes; D is then added as a learner (ballot 2)."""
    h = Harness(["A", "B", "D"], options)
    h.configure(config(1, "A", ("B",)), to=["A", "B"])
    for i in range(writes):
        h.write("A", f"w{i}", f"v{i}".encode())
        h.settle()
    h.configure(config(2, "A", ("B",), learners=("D",)))
    return h


def upgrade_requests(h: Harness) -> list[str]:
    return [r.request.node for r in h.reports if r.request.kind is RequestKind.UPGRADE]


def test_learner_catches_up_from_memory_and_is_proposed_for_upgrade() -> None:
    h = grown(ReplicationOptions())
    d = h.cores["D"]
    assert d.status is PartitionStatus.POTENTIAL_SECONDARY
    assert h.deliver(to="A", kind=LearnRequest) == 1
    assert h.loads == []  # everything was still in memory
    h.settle()
    assert h.value("D") == b"v4" and d.committed == 5
    assert upgrade_requests(h) == ["D"]


def test_learner_receives_prepares_while_learning() -> None:
    h = grown(ReplicationOptions())
    h.write("A", "during", b"during")  # prepared to D too, before D's learn round is answered
    assert any(t == "D" and isinstance(m, Prepare) for t, m in h.inbox)
    h.deliver(to="D", kind=Prepare)
    assert h.cores["D"].follower.learning  # held back until the learned state is in place
    h.settle()
    h.propagate()
    assert h.value("D") == b"during" and h.cores["D"].log.last == 6


def test_learner_from_the_wal_when_memory_no_longer_has_it() -> None:
    h = grown(ReplicationOptions(keep_committed_mutations=1))
    h.deliver(to="A", kind=LearnRequest)
    [(primary, load)] = h.loads
    assert (primary, load.learner, load.start_decree) == ("A", "D", 1)
    wal = [m for m in h.appended["A"] if load.start_decree <= m.decree <= load.end_decree]
    h.run("A", h.cores["A"].on_learn_state_loaded(h.now, load.load_id, 0, None, wal))
    h.settle()
    assert h.value("D") == b"v4" and upgrade_requests(h) == ["D"]


def test_learner_from_a_checkpoint_when_the_wal_is_gone() -> None:
    h = grown(ReplicationOptions(keep_committed_mutations=1))
    h.deliver(to="A", kind=LearnRequest)
    [(_, load)] = h.loads
    snapshot = h.machines["A"].snapshot()  # the primary's checkpoint at its applied decree (5)
    h.run("A", h.cores["A"].on_learn_state_loaded(h.now, load.load_id, snapshot[0], snapshot, []))
    [(_, response)] = [(t, m) for t, m in h.inbox if isinstance(m, LearnResponse)]
    assert response.checkpoint_decree == 5 and response.mutations == ()
    h.settle()
    [(learner, install)] = h.installs
    assert learner == "D" and install.decree == 5
    assert h.value("D") == b"v4" and h.cores["D"].committed == 5
    h.write("A", "next", b"next")
    h.propagate()
    assert h.value("D") == b"next"


def test_an_upgrading_learner_is_required_for_commits() -> None:
    h = grown(ReplicationOptions())
    h.settle()
    assert upgrade_requests(h) == ["D"]
    h.write("A", "w", b"w")
    h.deliver(kind=Prepare)
    h.sync("A", "B")
    h.deliver(to="A", kind=PrepareAck)
    assert h.replies_for("w") == []  # D's acknowledgement is missing
    h.sync("D")
    h.deliver(to="A", kind=PrepareAck)
    assert [r.error for r in h.replies_for("w")] == [ErrorCode.ERR_OK]


def test_learner_is_not_proposed_for_upgrade_while_the_primary_reconciles() -> None:
    h = Harness(["A", "B", "C", "D"])
    h.configure(config(1, "A", ("B", "C")), to=["A", "B", "C"])
    h.write("A", "w", b"v")
    h.deliver(kind=Prepare)
    h.sync()
    h.inbox.clear()  # A dies: decree 1 may be committed, though neither B nor C knows it
    h.configure(config(2, "B", ("C",), learners=("D",)), to=["B", "C", "D"])
    h.deliver(to="C", drop=True)  # B cannot commit its re-proposal yet
    h.deliver(to="B", kind=LearnRequest)
    h.deliver(to="D", kind=LearnResponse)
    h.deliver(to="B", kind=PrepareAck)  # D acknowledges its commit point (0): not enough, decree 1 may be
    assert h.cores["B"].committed == 0 and upgrade_requests(h) == []  # committed and D lacks it durably
    h.settle()
    h.tick(h.options.prepare_retry_seconds)
    h.settle()
    assert upgrade_requests(h) == ["D"] and h.cores["B"].committed == 1


def test_stalled_learner_learns_again() -> None:
    h = grown(ReplicationOptions(keep_committed_mutations=1))
    h.deliver(to="A", kind=LearnRequest)
    [(_, load)] = h.loads
    h.run("A", h.cores["A"].on_learn_state_loaded(h.now, load.load_id, 0, None, h.appended["A"]))
    h.settle()
    h.write("A", "lost", b"lost")
    h.deliver(to="D", kind=Prepare, drop=True)  # D misses decree 6 for good
    h.settle()
    h.write("A", "next", b"next")
    h.settle()
    d = h.cores["D"]
    assert d.follower.valid_end == 5 and 7 in d.follower.buffer
    h.tick(h.options.learn_retry_seconds)
    learn_requests = [m for t, m in h.inbox if isinstance(m, LearnRequest)]
    assert [m.committed for m in learn_requests] == [d.committed]


def test_learn_request_from_a_non_learner_is_ignored() -> None:
    h = grown(ReplicationOptions())
    h.inbox.clear()
    stray = LearnRequest((1, 0), 2, "B", 1, 0)
    assert h.run("A", h.cores["A"].on_message(h.now, stray)) == []
    assert all(not isinstance(e, fx.LoadLearnState) for e in h.effects["A"])


def test_a_learner_far_behind_catches_up_over_several_bounded_rounds() -> None:
    """Each learn response stays under max_learn_bytes, so a long backlog never exceeds the frame limit."""
    h = grown(ReplicationOptions(max_learn_bytes=200), writes=12)
    d = h.cores["D"]
    rounds = []
    while d.follower.learning and h.deliver(to="A", kind=LearnRequest):
        [response] = [m for t, m in h.inbox if t == "D" and isinstance(m, LearnResponse)]
        assert 1 <= len(response.mutations) < 12
        assert sum(len(m.encode()) for m in response.mutations[:-1]) <= 200
        rounds.append(len(response.mutations))
        h.deliver(to="D", kind=LearnResponse)  # D asks for the rest at once, without waiting for a retry
        h.sync("D")
    h.settle()
    assert len(rounds) > 2 and sum(rounds) == 12
    assert h.value("D") == b"v11" and d.committed == 12
    assert upgrade_requests(h) == ["D"]


def test_a_learner_still_advances_when_writes_move_memory_on_while_the_wal_is_read() -> None:
    """Under steady writes the primary's memory always moves past what a WAL read returns; the learner must
    still get the loaded part (before, the answer was dropped and the learner asked forever)."""
    h = grown(ReplicationOptions(keep_committed_mutations=1))
    d = h.cores["D"]
    h.deliver(to="A", kind=LearnRequest)
    [(_, load)] = h.loads
    for i in range(5, 10):  # committed by A and B meanwhile: A's memory floor moves past the load's end
        h.write("A", f"w{i}", f"v{i}".encode())
        h.deliver(to="B", kind=Prepare)
        h.sync("A", "B")
        h.deliver(to="A", kind=PrepareAck)
    assert h.cores["A"].log.floor > load.end_decree
    wal = [m for m in h.appended["A"] if load.start_decree <= m.decree <= load.end_decree]
    h.run("A", h.cores["A"].on_learn_state_loaded(h.now, load.load_id, 0, None, wal))
    assert any(t == "D" and isinstance(m, LearnResponse) for t, m in h.inbox)
    h.deliver(to="D", kind=LearnResponse)
    h.sync("D")
    assert d.committed == load.end_decree and d.follower.learning  # it asked again at once, from there
    h.deliver(to="A", kind=LearnRequest)
    h.settle()
    for _, later in h.loads[1:]:  # served from the WAL again if memory no longer has it
        wal = [m for m in h.appended["A"] if later.start_decree <= m.decree <= later.end_decree]
        h.run("A", h.cores["A"].on_learn_state_loaded(h.now, later.load_id, 0, None, wal))
    h.settle()
    h.propagate()
    assert h.value("D") == b"v9" and d.committed == h.cores["A"].committed


def test_a_learner_of_an_older_version_gets_the_checkpoint_by_value() -> None:
    h = Harness(["A", "L"], ReplicationOptions(keep_committed_mutations=1))
    h.configure(config(1, "A", (), ("L",)))
    for i in range(5):
        h.write("A", f"w{i}", b"v")
        h.settle()
    h.loads.clear()
    old_style = {key: value for key, value in LearnRequest((1, 0), 1, "L", 9, 0).to_wire().items()
                 if key != "by_reference"}
    h.run("A", h.cores["A"].on_message(h.now, decode_message(old_style)))
    [(_, load)] = h.loads
    assert load.by_reference is False
    h.loads.clear()
    h.run("A", h.cores["A"].on_message(h.now, LearnRequest((1, 0), 1, "L", 10, 0, by_reference=True)))
    [(_, load)] = h.loads
    assert load.by_reference is True
