"""The meta server's table lifecycle, assignment and persistence, driven directly (no network)."""

from __future__ import annotations

import pytest
from twisted.internet import task

from pegasus_node.config import NodeConfig
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.meta.model import AS_AVAILABLE, AS_DROPPED
from pegasus_node.meta.server import MetaServer
from pegasus_node.meta.state_store import FileStateStore, StateStoreError


class FakeClockless:
    """A settable clock, so liveness (grace) can be tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_meta(tmp_path, clock=None, **config):
    store = FileStateStore(tmp_path / "meta_state.json")
    return MetaServer(NodeConfig(**config), store, address="127.0.0.1:34601", clock=clock or FakeClockless())


def beacon_all(meta, addresses):
    for address in addresses:
        meta.on_beacon(address, [])


NODES = ["127.0.0.1:34801", "127.0.0.1:34802", "127.0.0.1:34803"]


def test_create_assigns_partitions_evenly_and_survives_restart(tmp_path):
    clock = FakeClockless()
    meta = make_meta(tmp_path, clock)
    beacon_all(meta, NODES)
    app = meta.create_app("t1", 8, 1)
    assert app.app_id == 1 and app.status == AS_AVAILABLE
    primaries = [c.primary for c in meta.partitions[app.app_id]]
    counts = sorted(primaries.count(n) for n in NODES)
    assert counts == [2, 3, 3]
    assert all(c.ballot == 1 for c in meta.partitions[app.app_id])

    again = make_meta(tmp_path, clock)
    assert again.apps[1].name == "t1"
    assert [c.primary for c in again.partitions[1]] == primaries
    # Servers named in configurations are not alive until they beacon to the new meta process.
    assert again.alive_nodes() == []
    beacon_all(again, NODES)
    assert again.create_app("t2", 4, 1).app_id == 2


def test_create_rejects_bad_input(tmp_path):
    meta = make_meta(tmp_path)
    with pytest.raises(PegasusError) as info:
        meta.create_app("t1", 4, 1)
    assert info.value.code == ErrorCode.ERR_NOT_ENOUGH_MEMBER
    beacon_all(meta, NODES)
    for name, partitions, replicas, code in [
        ("bad name!", 4, 1, ErrorCode.ERR_INVALID_PARAMETERS),
        ("t", 0, 1, ErrorCode.ERR_INVALID_PARAMETERS),
        ("t", 4, 0, ErrorCode.ERR_INVALID_PARAMETERS),
    ]:
        with pytest.raises(PegasusError) as info:
            meta.create_app(name, partitions, replicas)
        assert info.value.code == code
    meta.create_app("t", 4, 1)
    with pytest.raises(PegasusError) as info:
        meta.create_app("t", 4, 1)
    assert info.value.code == ErrorCode.ERR_APP_EXIST


def test_drop_recall_and_purge(tmp_path):
    meta = make_meta(tmp_path)
    beacon_all(meta, NODES)
    app = meta.create_app("t1", 2, 1)
    dropped = meta.drop_app("t1", 3600)
    assert dropped.status == AS_DROPPED and dropped.expire_time > dropped.drop_time
    assert meta.assignments_for(NODES[0]) == []
    with pytest.raises(PegasusError) as info:
        meta.drop_app("t1", 10)
    assert info.value.code == ErrorCode.ERR_APP_NOT_EXIST
    meta.create_app("t1", 2, 1)  # the name is free again
    with pytest.raises(PegasusError) as info:
        meta.recall_app(app.app_id, None)
    assert info.value.code == ErrorCode.ERR_APP_EXIST
    recalled = meta.recall_app(app.app_id, "t1_old")
    assert recalled.name == "t1_old" and recalled.status == AS_AVAILABLE

    meta.drop_app("t1_old", 0)
    meta.purge_expired_apps()
    assert app.app_id not in meta.apps
    reply = meta.on_beacon(NODES[0], [])
    assert reply["purged_app_ids"] == [app.app_id]
    assert reply["available_app_ids"] == sorted(a.app_id for a in meta.apps.values() if a.status == AS_AVAILABLE)
    assert app.app_id not in reply["available_app_ids"] and reply["available_app_ids"]
    reopened = make_meta(tmp_path)
    assert app.app_id not in reopened.apps and reopened.purged_app_ids == [app.app_id]


def test_liveness_follows_grace(tmp_path):
    clock = FakeClockless()
    meta = make_meta(tmp_path, clock, lease_seconds=4.0, grace_seconds=5.0)
    beacon_all(meta, NODES)
    clock.now += 4.9
    meta.on_beacon(NODES[0], [])
    assert meta.alive_nodes() == NODES
    clock.now += 0.2
    assert meta.alive_nodes() == [NODES[0]]
    info = {n["address"]: n for n in meta.node_infos()}
    assert info[NODES[1]]["status"] == "unalive" and info[NODES[0]]["status"] == "alive"
    assert info[NODES[0]]["lease_remaining_ms"] > 3000


def test_beacon_returns_assignments_and_records_decrees(tmp_path):
    meta = make_meta(tmp_path)
    beacon_all(meta, NODES)
    meta.create_app("t1", 3, 1)
    mine = meta.on_beacon(NODES[0], [])["assignments"]
    assert mine and all(a["primary"] == NODES[0] and a["app_name"] == "t1" for a in mine)
    gpid = mine[0]["gpid"]
    meta.on_beacon(NODES[0], [{"gpid": gpid, "ballot": 1, "status": "PRIMARY", "last_committed_decree": 42,
                               "last_durable_decree": 42}])
    assert meta.committed[tuple(gpid)] == 42
    assert meta.assignments_for(NODES[0])[0]["last_committed_decree"] in (0, 42)


def test_meta_level(tmp_path):
    meta = make_meta(tmp_path)
    assert meta.set_meta_level("lively") == {"level": "lively", "old_level": "steady"}
    with pytest.raises(PegasusError):
        meta.set_meta_level("bogus")
    assert make_meta(tmp_path).meta_level == "lively"


def test_unreadable_state_file_is_a_clear_error(tmp_path):
    (tmp_path / "meta_state.json").write_text("{not json")
    with pytest.raises(StateStoreError, match="unreadable"):
        FileStateStore(tmp_path / "meta_state.json")


def test_events_record_tables_and_liveness(tmp_path):
    clock = FakeClockless()
    meta = make_meta(tmp_path, clock, lease_seconds=4.0, grace_seconds=5.0)
    beacon_all(meta, NODES)
    meta.create_app("t1", 2, 1)
    clock.now += 6
    meta.on_beacon(NODES[0], [])
    meta.tick()
    kinds = [(e["kind"], e.get("address")) for e in meta.events_since(0)["events"]]
    assert kinds.count(("node_alive", NODES[1])) == 1
    assert ("table_created", None) in kinds
    assert ("node_dead", NODES[1]) in kinds and ("node_dead", NODES[2]) in kinds
    assert ("node_dead", NODES[0]) not in kinds
    last = meta.events_since(0)["last_seq"]
    meta.tick()
    assert meta.events_since(last)["events"] == []
    meta.on_beacon(NODES[1], [])
    assert [e["kind"] for e in meta.events_since(last)["events"]] == ["node_alive"]


def test_an_overtaken_beacon_does_not_replace_newer_reports(tmp_path):
    meta = make_meta(tmp_path)
    beacon_all(meta, NODES)
    app = meta.create_app("t1", 1, 1)
    gpid = [app.app_id, 0]
    primary = meta.partitions[app.app_id][0].primary

    def report(decree):
        return [{"gpid": gpid, "ballot": 1, "status": "PRIMARY", "last_committed_decree": decree,
                 "last_durable_decree": decree}]

    meta.on_beacon(primary, report(9), send_time_ms=2000)
    reply = meta.on_beacon(primary, report(3), send_time_ms=1000)  # sent earlier, arrived later
    assert meta.committed[tuple(gpid)] == 9
    assert meta.reports[primary][tuple(gpid)].last_committed_decree == 9
    assert reply["assignments"], "an overtaken beacon is still answered"


def test_a_server_is_declared_dead_when_its_grace_runs_out_not_at_the_next_tick(tmp_path):
    clock = task.Clock()
    meta = make_meta(tmp_path, clock.seconds, lease_seconds=1.0, grace_seconds=1.5, beacon_interval_seconds=1.0)
    meta._tick_loop.clock = clock
    meta._tick_loop.start(1.0, now=False)
    try:
        clock.advance(0.2)
        beacon_all(meta, NODES)  # every grace period now ends at 1.7
        clock.advance(0.8)  # the tick at 1.0: all alive
        clock.advance(0.5)
        meta.on_beacon(NODES[0], [])  # at 1.5: NODES[0] lives on
        clock.advance(0.202)  # 1.702: before the next tick (2.0)
        dead = [e.get("address") for e in meta.events_since(0)["events"] if e["kind"] == "node_dead"]
        assert sorted(dead) == sorted(NODES[1:])
        assert meta.alive_nodes() == [NODES[0]]
    finally:
        meta.stop()
