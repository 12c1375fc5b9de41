"""The meta server's pure configuration decisions (pegasus_node.meta.guardian and balancer)."""

from __future__ import annotations

from pegasus_node.meta.guardian import ClusterView, MetaLevel, assignments_for, handle_request, propose
from pegasus_node.replication.config import (
    ConfigChangeRequest,
    PartitionConfiguration,
    PartitionStatus as S,
    ReplicaReport,
    RequestKind,
)

G = (1, 0)


def cfg(ballot: int, primary: str, secondaries: tuple = (), learners: tuple = (), gpid=G) -> PartitionConfiguration:
    return PartitionConfiguration(gpid, ballot, primary, tuple(secondaries), tuple(learners))


def reports(*entries: tuple) -> dict:
    """(node, status, ballot[, committed[, gpid]]) -> the reports mapping."""
    out: dict = {}
    for node, status, ballot, *rest in entries:
        committed = rest[0] if rest else 0
        gpid = rest[1] if len(rest) > 1 else G
        out.setdefault(node, {})[gpid] = ReplicaReport(gpid, ballot, status, committed, committed)
    return out


def view(configs, alive, reps=None, level=MetaLevel.STEADY, replica_count=3) -> ClusterView:
    configs = {c.gpid: c for c in configs}
    return ClusterView(configs, {1: replica_count}, frozenset(alive), reps or {}, level)


def only(proposals: list):
    assert len(proposals) == 1, proposals
    return proposals[0].new


# ------------------------------------------------------------------------------------------ promotion


def test_dead_primary_is_replaced_by_the_most_up_to_date_secondary() -> None:
    old = cfg(4, "A", ("B", "C"))
    reps = reports(("B", S.SECONDARY, 4, 10), ("C", S.SECONDARY, 4, 12))
    new = only(propose(view([old], {"B", "C"}, reps)))
    assert (new.ballot, new.primary, new.secondaries) == (5, "C", ("B",))


def test_promotion_drops_dead_members_in_the_same_change() -> None:
    old = cfg(4, "A", ("B", "C"), learners=("D",))
    new = only(propose(view([old], {"B"}, reports(("B", S.SECONDARY, 4)))))
    assert (new.primary, new.secondaries, new.learners) == ("B", (), ())


def test_never_promotes_a_replica_that_is_not_a_secondary() -> None:
    # the primary is dead; the only live replicas are a learner and a server outside the partition
    old = cfg(4, "A", ("B",), learners=("D",))
    reps = reports(("D", S.POTENTIAL_SECONDARY, 4, 99), ("E", S.INACTIVE, 3, 99))
    assert propose(view([old], {"D", "E"}, reps)) == []


def test_never_promotes_a_secondary_that_does_not_report_the_replica() -> None:
    old = cfg(4, "A", ("B",))
    assert propose(view([old], {"B"}, {"B": {}})) == []  # B answered beacons, but holds no replica of G
    assert propose(view([old], {"B"}, reports(("B", S.ERROR, 4)))) == []


def test_restarted_primary_reporting_inactive_at_its_ballot_is_replaced() -> None:
    old = cfg(4, "A", ("B",))
    reps = reports(("A", S.INACTIVE, 4), ("B", S.SECONDARY, 4))
    assert only(propose(view([old], {"A", "B"}, reps))).primary == "B"


def test_primary_that_has_not_reported_its_ballot_yet_is_left_alone() -> None:
    old = cfg(4, "A", ("B",))
    reps = reports(("A", S.SECONDARY, 3), ("B", S.SECONDARY, 4))
    assert propose(view([old], {"A", "B"}, reps, replica_count=2)) == []


def test_last_replica_is_re_elected_when_it_comes_back() -> None:
    old = cfg(4, "A", ("B",))
    reps = reports(("A", S.INACTIVE, 4))
    new = only(propose(view([old], {"A"}, reps)))
    assert (new.ballot, new.primary, new.secondaries) == (5, "A", ())


def test_no_primary_promotes_only_once_every_live_secondary_reported_the_ballot() -> None:
    old = cfg(6, "", ("A", "B", "C"))
    stale = reports(("A", S.PRIMARY, 5), ("B", S.SECONDARY, 6), ("C", S.SECONDARY, 6))
    assert propose(view([old], {"A", "B", "C"}, stale)) == []  # A may still be serving as primary
    fresh = reports(("A", S.SECONDARY, 6), ("B", S.SECONDARY, 6), ("C", S.SECONDARY, 6))
    assert only(propose(view([old], {"A", "B", "C"}, fresh))).primary in {"A", "B", "C"}


# ------------------------------------------------------------------------------------------ removal


def test_dead_or_broken_secondaries_and_learners_are_removed() -> None:
    old = cfg(2, "A", ("B", "C"), learners=("D",))
    reps = reports(("A", S.PRIMARY, 2), ("B", S.ERROR, 2), ("D", S.POTENTIAL_SECONDARY, 2))
    new = only(propose(view([old], {"A", "B", "D"}, reps)))
    assert (new.ballot, new.secondaries, new.learners) == (3, (), ("D",))


def test_primary_request_removes_a_member_only_at_the_current_ballot_from_the_primary() -> None:
    old = cfg(2, "A", ("B", "C"))
    v = view([old], {"A", "B", "C"})
    assert handle_request(v, ConfigChangeRequest(G, 1, RequestKind.REMOVE, "B", "A")) is None  # stale ballot
    assert handle_request(v, ConfigChangeRequest(G, 2, RequestKind.REMOVE, "B", "C")) is None  # not the primary
    assert handle_request(v, ConfigChangeRequest(G, 2, RequestKind.REMOVE, "X", "A")) is None  # not a member
    proposal = handle_request(v, ConfigChangeRequest(G, 2, RequestKind.REMOVE, "B", "A"))
    assert (proposal.new.ballot, proposal.new.secondaries) == (3, ("C",))


# ------------------------------------------------------------------------------------- learners


def test_learner_added_when_below_the_replica_count_preferring_a_server_with_a_copy() -> None:
    old = cfg(2, "A", ("B",))
    other = cfg(1, "E", ("F", "A"), gpid=(1, 1))
    reps = reports(("A", S.PRIMARY, 2), ("B", S.SECONDARY, 2), ("D", S.INACTIVE, 1))
    new = only(propose(view([old, other], {"A", "B", "C", "D", "E", "F"}, reps)))
    assert new.learners == ("D",)  # D still holds an old copy of G: it has less to learn
    no_copy = only(propose(view([old, other], {"A", "B", "C", "E", "F"}, reports(("A", S.PRIMARY, 2)))))
    assert no_copy.learners == ("C",)  # the least loaded server


def test_one_learner_at_a_time_and_none_without_a_primary() -> None:
    assert propose(view([cfg(2, "A", (), learners=("B",))], {"A", "B", "C"})) == []
    assert propose(view([cfg(2, "", ("A",))], {"A", "B"}, reports(("A", S.SECONDARY, 1)))) == []


def test_learner_upgraded_on_the_primary_request() -> None:
    old = cfg(3, "A", ("B",), learners=("C",))
    v = view([old], {"A", "B", "C"})
    new = handle_request(v, ConfigChangeRequest(G, 3, RequestKind.UPGRADE, "C", "A")).new
    assert (new.ballot, new.secondaries, new.learners) == (4, ("B", "C"), ())
    assert handle_request(v, ConfigChangeRequest(G, 3, RequestKind.UPGRADE, "B", "A")) is None


def test_surplus_secondary_removed_from_the_most_loaded_server() -> None:
    old = cfg(5, "A", ("B", "C", "D"))
    other = cfg(1, "C", ("E", "F"), gpid=(1, 1))
    new = only(propose(view([old, other], {"A", "B", "C", "D", "E", "F"})))
    assert new.secondaries == ("B", "D")


# ------------------------------------------------------------------------------------ levels, balance


def test_freezed_only_replaces_lost_primaries() -> None:
    dead_secondary = cfg(2, "A", ("B", "C"))
    v = view([dead_secondary], {"A", "B"}, level=MetaLevel.FREEZED)
    assert propose(v) == []
    assert handle_request(v, ConfigChangeRequest(G, 2, RequestKind.REMOVE, "B", "A")) is None
    dead_primary = cfg(2, "A", ("B",))
    v = view([dead_primary], {"B"}, reports(("B", S.SECONDARY, 2)), level=MetaLevel.FREEZED)
    assert only(propose(v)).primary == "B"


def healthy_cluster() -> list[PartitionConfiguration]:
    # every primary on A; replicas spread A:4, B:4, C:4, D:0
    return [cfg(1, "A", ("B", "C"), gpid=(1, i)) for i in range(4)]


def test_steady_does_not_balance() -> None:
    assert propose(view(healthy_cluster(), {"A", "B", "C", "D"})) == []


def test_lively_moves_a_primary_in_two_steps() -> None:
    configs = healthy_cluster()
    alive = {"A", "B", "C"}
    first = only(propose(view(configs, alive, level=MetaLevel.LIVELY)))
    assert first.primary == "" and set(first.secondaries) == {"A", "B", "C"}
    configs = [first] + [c for c in configs if c.gpid != first.gpid]
    reps = reports(*[(n, S.SECONDARY, first.ballot, 0, first.gpid) for n in ("A", "B", "C")])
    second = only(propose(view(configs, alive, reps, level=MetaLevel.LIVELY)))
    assert second.primary in {"B", "C"} and second.ballot == first.ballot + 1


def test_lively_copies_a_replica_to_an_empty_server_then_trims() -> None:
    configs = [cfg(1, f"{'ABC'[i % 3]}", tuple(n for n in "ABC" if n != "ABC"[i % 3]), gpid=(1, i))
               for i in range(3)]
    alive = {"A", "B", "C", "D"}
    copy = only(propose(view(configs, alive, level=MetaLevel.LIVELY)))
    assert copy.learners == ("D",)
    upgraded = PartitionConfiguration(copy.gpid, copy.ballot + 1, copy.primary, copy.secondaries + ("D",))
    configs = [upgraded] + [c for c in configs if c.gpid != copy.gpid]
    trim = only(propose(view(configs, alive, level=MetaLevel.LIVELY)))
    assert "D" in trim.secondaries and len(trim.members) == 3


def test_balanced_cluster_stays_put() -> None:
    configs = [cfg(1, "ABC"[i], tuple(n for n in "ABC" if n != "ABC"[i]), gpid=(1, i)) for i in range(3)]
    assert propose(view(configs, {"A", "B", "C"}, level=MetaLevel.LIVELY)) == []


def test_assignments_include_partitions_a_server_reported_but_left() -> None:
    mine, gone, other = cfg(1, "A", ("B",)), cfg(2, "C", ("D",), gpid=(1, 1)), cfg(1, "C", gpid=(1, 2))
    assigned = assignments_for("A", [mine, gone, other], reported=[(1, 1)])
    assert [c.gpid for c in assigned] == [(1, 0), (1, 1)]
