"""The meta server's duplications, driven directly: checks on add, progress from primaries only, transitions,
and persistence across a restart."""

from __future__ import annotations

import pytest

from pegasus_node.errors import ErrorCode, PegasusError
from tests.meta.test_meta_server import NODES, FakeClockless, beacon_all, make_meta

CLUSTERS = {"cluster_name": "src", "remote_clusters": {"dst": "127.0.0.1:1"},
            "duplication_group": {"src": 1, "dst": 2}}


def meta_with_table(tmp_path, clock=None, **config):
    """Table t (2 partitions); each primary has reported its commit point (3) in a beacon."""
    meta = make_meta(tmp_path, clock or FakeClockless(), **{**CLUSTERS, **config})
    beacon_all(meta, NODES)
    app = meta.create_app("t", 2, 3)
    report_commit_points(meta, app.app_id, 3)
    return meta


def report_commit_points(meta, app_id: int, decree: int) -> None:
    for config in meta.partitions[app_id]:
        meta.on_beacon(config.primary, [{"gpid": list(config.gpid), "ballot": config.ballot, "status": "PRIMARY",
                                         "last_committed_decree": decree, "last_durable_decree": decree}])


def test_a_duplication_starts_at_the_commit_points_the_primaries_reported(tmp_path):
    meta = make_meta(tmp_path, FakeClockless(), **CLUSTERS)
    beacon_all(meta, NODES)
    app = meta.create_app("t", 2, 3)
    with pytest.raises(PegasusError, match="not reported their commit point") as early:
        meta.duplications.add("t", "dst", "FAIL_SLOW")
    assert early.value.code == ErrorCode.ERR_TRY_AGAIN
    report_commit_points(meta, app.app_id, 11)
    assert meta.duplications.add("t", "dst", "FAIL_SLOW").confirmed == {0: 11, 1: 11}


@pytest.mark.parametrize("config, remote, error", [
    ({}, "elsewhere", "not in \\[pegasus.clusters\\].*known: dst"),
    ({"remote_clusters": {"src": "127.0.0.1:1"}}, "src", "is this cluster"),
    ({"duplication_group": {"src": 1}}, "dst", "missing: dst"),
    ({"cluster_name": ""}, "dst", "cluster_name"),
    ({"duplication_enabled": False}, "dst", "disabled"),
])
def test_add_needs_a_known_cluster_and_the_duplication_group(tmp_path, config, remote, error):
    meta = meta_with_table(tmp_path, **config)
    with pytest.raises(PegasusError, match=error) as refused:
        meta.duplications.add("t", remote, "FAIL_SLOW")
    assert refused.value.code == ErrorCode.ERR_INVALID_PARAMETERS
    assert meta.duplications.describe("t")["duplications"] == []


def test_progress_moves_only_forward_and_only_from_the_primary_then_survives_a_restart(tmp_path):
    clock = FakeClockless()
    meta = meta_with_table(tmp_path, clock)
    entry = meta.duplications.add("t", "dst", "FAIL_SLOW")
    with pytest.raises(PegasusError) as twice:
        meta.duplications.add("t", "dst", "FAIL_SLOW")
    assert twice.value.code == ErrorCode.ERR_DUP_EXIST
    config = meta.partitions[entry.app_id][0]
    meta.on_beacon(config.secondaries[0], [], duplication_progress=[[entry.app_id, 0, entry.dupid, 50]])
    meta.on_beacon(config.primary, [], duplication_progress=[[entry.app_id, 0, entry.dupid, 7], ["junk"]])
    meta.on_beacon(config.primary, [], duplication_progress=[[entry.app_id, 0, entry.dupid, 5]])
    assert meta.duplications.entries[entry.app_id][entry.dupid].confirmed[0] == 7  # from 3
    meta.tick()  # saves the progress

    again = make_meta(tmp_path, clock, **CLUSTERS)
    [loaded] = again.duplications.describe("t")["duplications"]
    assert (loaded["dupid"], loaded["confirmed"]["0"], loaded["status"]) == (entry.dupid, 7, "DS_LOG")
    reply = again.on_beacon(config.primary, [])
    assert [(d["dupid"], d["remote_metas"]) for d in reply["duplications"]] == [(entry.dupid, "127.0.0.1:1")]


def test_pause_start_fail_mode_and_remove(tmp_path):
    meta = meta_with_table(tmp_path)
    entry = meta.duplications.add("t", "dst", "FAIL_SLOW")
    assert meta.duplications.modify("t", entry.dupid, status="DS_PAUSE").status == "DS_PAUSE"
    assert meta.duplications.modify("t", entry.dupid, status="DS_LOG").status == "DS_LOG"
    assert meta.duplications.modify("t", entry.dupid, fail_mode="skip").fail_mode == "FAIL_SKIP"
    meta.duplications.modify("t", entry.dupid, status="DS_REMOVED")
    assert meta.duplications.describe("t")["duplications"] == []
    assert meta.store.children(f"/apps/{entry.app_id}/duplication") == []
    with pytest.raises(PegasusError, match="no duplication"):
        meta.duplications.modify("t", entry.dupid, status="DS_LOG")
