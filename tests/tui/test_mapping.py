"""From RPC replies (shapes of docs/rpc.md) to snapshot rows, and how values look in cells.

The replication fields (last prepared decree, pending and queued mutations, a primary's own lease, a learner's
progress) come from each replica server's replica.status; these tests feed replies of that shape, some with
fields missing, as an older server or one that did not answer leaves them.
"""

from __future__ import annotations

import pytest

from pegasus_shell.health import HEALTHY, READ_UNHEALTHY, UNHEALTHY, WRITE_UNHEALTHY
from pegasus_shell.tui import __main__ as launcher
from pegasus_shell.tui import cells
from pegasus_shell.tui.model import ALIVE, ANSWERS, NO_ANSWER, ROLE_META, ROLE_REPLICA, UNALIVE, NodeRow
from pegasus_shell.tui.rates import OpsRates
from pegasus_shell.tui.run import poll_timeout
from pegasus_shell.tui.source import build_partition_rows, build_table_row, without_dead

A, B, C = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"
APP = {"app_id": 3, "name": "t", "partition_count": 3, "replica_count": 3, "status": "AS_AVAILABLE"}


def config(*partitions: dict) -> dict:
    return {"app": APP, "partitions": list(partitions)}


def partition(pidx: int, primary: str, secondaries=(), learners=(), ballot=4, committed=10) -> dict:
    return {"gpid": [3, pidx], "ballot": ballot, "primary": primary, "secondaries": list(secondaries),
            "learners": list(learners), "last_committed_decree": committed}


def test_replication_fields_are_taken_from_the_primarys_own_report():
    statuses = {
        A: {"lease_remaining_ms": 3000, "replicas": [
            {"gpid": [3, 0], "status": "PRIMARY", "ballot": 4, "last_committed_decree": 12,
             "last_prepared_decree": 15, "pending_mutations": 3, "queued_writes": 7,
             "primary_lease_remaining_ms": 2500},
            {"gpid": [9, 0], "status": "PRIMARY", "last_committed_decree": 999},  # another table's
        ]},
        B: {"lease_remaining_ms": 3900, "replicas": [
            {"gpid": [3, 0], "status": "SECONDARY", "last_committed_decree": 11, "last_prepared_decree": 15},
            {"gpid": [3, 1], "status": "PRIMARY", "last_committed_decree": 40},  # no replication fields yet
        ]},
    }
    rows = build_partition_rows(config(partition(0, A, [B], [C]), partition(1, B, [A, C]), partition(2, C)),
                                statuses, dead=set())
    first, second, third = rows
    assert (first.gpid, first.ballot, first.primary, first.secondaries, first.learners) == ((3, 0), 4, A, (B,), (C,))
    assert (first.last_committed_decree, first.last_prepared_decree, first.pending_mutations,
            first.queued_writes, first.primary_lease_remaining_ms) == (12, 15, 3, 7, 2500)
    assert first.health == UNHEALTHY  # two of three replicas: the learner does not count
    # without the per-replica fields: the primary server's lease, and "unknown" for the rest
    assert (second.last_committed_decree, second.last_prepared_decree, second.pending_mutations,
            second.primary_lease_remaining_ms, second.health) == (40, None, None, 3900, HEALTHY)
    # a primary that did not answer: the meta server's decree, nothing else
    assert (third.last_committed_decree, third.primary_lease_remaining_ms, third.health) == (10, None, WRITE_UNHEALTHY)


def test_learners_show_how_their_catch_up_goes_from_their_own_reports():
    statuses = {
        A: {"replicas": [{"gpid": [3, 0], "status": "PRIMARY", "last_committed_decree": 900},
                         {"gpid": [3, 1], "status": "PRIMARY", "last_committed_decree": 50}]},
        B: {"replicas": [{"gpid": [3, 0], "status": "POTENTIAL_SECONDARY", "last_committed_decree": 0,
                          "checkpoint_download": {"file": "f", "bytes_done": 450, "bytes": 1000}},
                         {"gpid": [3, 1], "status": "POTENTIAL_SECONDARY", "last_committed_decree": 42}]},
        C: {"replicas": [{"gpid": [3, 0], "status": "POTENTIAL_SECONDARY", "installing_checkpoint": True},
                         {"gpid": [3, 1], "status": "POTENTIAL_SECONDARY",
                          "checkpoint_download_interrupted": {"bytes_done": 100, "bytes": 400}}]},
    }
    first, second = build_partition_rows(config(partition(0, A, [], [B, C, "127.0.0.1:4"]),
                                                partition(1, A, [], [B, C])), statuses, dead=set())
    assert first.learner_progress == ("checkpoint 45%", "installing checkpoint", "")
    assert second.learner_progress == ("decree 42/50", "checkpoint 25%, interrupted")
    assert cells.learners(first.learners, first.learner_progress) == (
        f"{B} (checkpoint 45%),{C} (installing checkpoint),127.0.0.1:4")
    assert cells.learners((), ()) == cells.MISSING


def test_members_declared_dead_do_not_count_towards_health():
    p = partition(0, A, [B, C])
    assert without_dead(p, {A}) == {**p, "primary": "", "secondaries": [B, C]}
    assert without_dead(p, set()) is p
    rows = build_partition_rows(config(p, partition(1, B, [A]), partition(2, C, [A, B])), {}, dead={A})
    assert [r.health for r in rows] == [READ_UNHEALTHY, WRITE_UNHEALTHY, UNHEALTHY]
    assert rows[0].primary == A  # the configuration is shown as the meta server has it


def test_table_rows_count_health_like_ls_d():
    parts = config(partition(0, A, [B, C]), partition(1, "", [B]), partition(2, A, [B]))
    row = build_table_row(APP, parts, dead=set())
    assert (row.name, row.status, row.fully_healthy, row.unhealthy, row.write_unhealthy, row.read_unhealthy) == (
        "t", "AVAILABLE", 1, 2, 1, 1)
    unknown = build_table_row(APP, None, dead=set())  # its configuration could not be read
    assert unknown.fully_healthy is None and unknown.unhealthy is None


def test_node_status_combines_the_meta_servers_view_and_our_own_call():
    assert NodeRow(A, ROLE_REPLICA, "alive", True).status == ALIVE
    assert NodeRow(A, ROLE_REPLICA, "alive", False).status == NO_ANSWER
    assert NodeRow(A, ROLE_REPLICA, "unalive", True).status == UNALIVE
    assert NodeRow(A, ROLE_REPLICA, None, True).status == ANSWERS
    assert NodeRow(A, ROLE_META, None, True).status == ALIVE
    assert NodeRow(A, ROLE_META, None, False).status == NO_ANSWER


def test_ops_rates_between_refreshes_and_across_a_restart():
    rates = OpsRates(history=3)
    assert rates.update(A, {"reads": 10, "writes": 5}, now=100.0) is None  # first sample
    assert rates.update(A, {"reads": 30, "writes": 15}, now=102.0) == 15.0
    assert rates.update(A, None, now=103.0) is None  # did not answer
    assert rates.update(A, {"reads": 4, "writes": 0}, now=104.0) is None  # restarted: counters from 0
    assert rates.update(A, {"reads": 14, "writes": 0}, now=105.0) == 10.0
    assert rates.history(A) == (15.0, 0.0, 10.0)
    assert rates.history(B) == ()


def test_cells():
    assert cells.duration_ms(None) == "-" and cells.duration_ms(3456) == "3.5s" and cells.duration_ms(12345) == "12s"
    assert cells.rate(None) == "-" and cells.rate(2.25) == "2.2" and cells.rate(1520.4) == "1520"
    assert cells.pending(None, None) == "-" and cells.pending(3, None) == "3" and cells.pending(None, 5) == "-+5"
    assert cells.pending(3, 12) == "3+12"
    assert cells.addresses(()) == "-" and cells.addresses((A, B)) == f"{A},{B}"
    assert cells.sparkline(()) == "" and cells.sparkline((0.0, 0.0)) == "▁▁"
    assert cells.sparkline(tuple(float(i) for i in range(20)), width=4) == "▇▇██"
    assert cells.dash(None) == "-" and cells.dash("") == "-" and cells.dash(0) == "0"


def test_poll_deadline_is_within_the_refresh_interval():
    assert poll_timeout(1.0) == 0.8
    assert poll_timeout(0.1) == 0.3  # a floor, so that a healthy cluster can answer at all
    assert poll_timeout(60) == 5.0


def test_the_launcher_rejects_bad_arguments_with_a_message(capsys):
    for args, message in ((["--meta", "127.0.0.1:1", "--interval", "0"], "must be > 0"),
                          (["--meta", "127.0.0.1:1", "--interval", "soon"], "not a number of seconds"),
                          (["--meta", "no-port"], "meta"),
                          ([], "--meta")):
        with pytest.raises(SystemExit) as exit_info:
            launcher.main(args)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
