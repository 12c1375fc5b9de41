"""Deleting the directories of replicas no longer assigned to the server (garbage.py), on a fake clock."""

from __future__ import annotations

import os

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.logger import LogLevel

from pegasus_node.config import NodeConfig
from pegasus_node.replica import garbage
from pegasus_node.replica.garbage import UnassignedReplicaCollector
from pegasus_node.replica.replica_dir import replica_dir
from pegasus_node.replica.server import ReplicaServer
from pegasus_node.replication.config import PartitionConfiguration
from pegasus_node.storage.fsutil import lock_directory
from tests.twisted_rpc.rpc_test_support import LogCapture

GRACE = 100.0
# A partition of the same table stays hosted in most tests: a table with nothing hosted here is kept whole
# (it may be a dropped table that can still be recalled).
HOSTED = (1, 0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def collector(tmp_path, clock):
    return UnassignedReplicaCollector(tmp_path, GRACE, clock)


def make_replica(data_dir, app_id: int, pidx: int):
    """A replica directory with some content, as an engine leaves it."""
    path = replica_dir(data_dir, app_id, pidx)
    (path / "wal").mkdir(parents=True)
    (path / "wal" / "0.log").write_bytes(b"x" * 100)
    (path / "ballot").write_text("3")
    return path


def test_an_unassigned_directory_survives_the_grace_period_then_is_removed(tmp_path, clock, collector):
    hosted = make_replica(tmp_path, *HOSTED)
    stale = make_replica(tmp_path, 1, 1)
    assert collector.collect({HOSTED}) == []
    clock.now += GRACE - 1
    assert collector.collect({HOSTED}) == [] and stale.exists()
    clock.now += 1
    with LogCapture() as logs:
        assert collector.collect({HOSTED}) == [stale]
    assert not stale.exists() and hosted.exists()
    removal = [e for e in logs.events if e.get("log_namespace") == "pegasus.replica_gc"]
    assert len(removal) == 1 and removal[0]["path"] == str(stale) and removal[0]["seconds"] == GRACE
    assert collector.collect({HOSTED}) == []  # forgotten once removed


def test_a_directory_assigned_back_is_kept_and_its_clock_restarts(tmp_path, clock, collector):
    make_replica(tmp_path, *HOSTED)
    moved = make_replica(tmp_path, 1, 1)
    collector.collect({HOSTED})
    clock.now += GRACE - 10
    collector.collect({HOSTED, (1, 1)})  # assigned back before the grace period ended
    clock.now += 20
    collector.collect({HOSTED})  # unassigned again: a new grace period starts now
    assert moved.exists()
    clock.now += GRACE - 1
    assert collector.collect({HOSTED}) == [] and moved.exists()
    clock.now += 1
    assert collector.collect({HOSTED}) == [moved]


def test_hosted_directories_are_never_touched(tmp_path, clock, collector):
    paths = [make_replica(tmp_path, 1, pidx) for pidx in range(3)]
    hosted = {(1, 0), (1, 1), (1, 2)}
    for _ in range(3):
        assert collector.collect(hosted) == []
        clock.now += 10 * GRACE
    assert all((path / "wal" / "0.log").exists() for path in paths)
    assert not any((path / "LOCK").exists() for path in paths)


def test_a_table_with_no_partition_hosted_here_is_kept(tmp_path, clock, collector):
    """A dropped table is assigned nowhere but can be recalled (it is deleted when the meta server purges
    it); from here it looks like a table moved entirely elsewhere, which is kept too."""
    make_replica(tmp_path, *HOSTED)
    dropped = [make_replica(tmp_path, 2, pidx) for pidx in range(2)]
    for _ in range(3):
        assert collector.collect({HOSTED}) == []
        clock.now += 10 * GRACE
    assert all(path.exists() for path in dropped)
    # Recalled, with one partition placed here again: the other one's clock starts only now.
    assert collector.collect({HOSTED, (2, 0)}) == []
    clock.now += GRACE
    assert collector.collect({HOSTED, (2, 0)}) == [dropped[1]]


def test_a_table_moved_entirely_elsewhere_is_garbage_once_the_meta_server_lists_it_available(
        tmp_path, clock, collector):
    make_replica(tmp_path, *HOSTED)
    moved = [make_replica(tmp_path, 2, pidx) for pidx in range(2)]
    dropped = make_replica(tmp_path, 3, 0)
    assert collector.collect({HOSTED}, available_app_ids=[1, 2]) == []
    clock.now += GRACE
    assert collector.collect({HOSTED}, available_app_ids=[1, 2]) == moved
    assert dropped.exists()  # table 3 is not available: dropped, and maybe recalled later


def test_names_other_than_app_id_dot_partition_are_ignored(tmp_path, clock, collector):
    make_replica(tmp_path, *HOSTED)
    root = replica_dir(tmp_path, 0, 0).parent
    others = [root / name for name in ("1.1.tmp", "1.x", "01.1", "-1.1", "1", "1.1.gar", "lost+found")]
    for path in others:
        path.mkdir()
    (root / "1.2").write_text("a file, not a replica directory")
    os.symlink(make_replica(tmp_path / "elsewhere", 1, 3), root / "1.3")
    collector.collect({HOSTED})
    clock.now += 10 * GRACE
    assert collector.collect({HOSTED}) == []
    assert all(path.exists() for path in others) and (root / "1.2").is_file()
    assert (root / "1.3").is_symlink() and (tmp_path / "elsewhere" / "replica" / "1.3" / "ballot").exists()


def test_a_directory_whose_engine_is_still_open_is_removed_once_it_closes(tmp_path, clock, collector):
    make_replica(tmp_path, *HOSTED)
    closing = make_replica(tmp_path, 1, 1)
    engine_lock = lock_directory(closing, "engine")  # what an open StorageEngine holds
    try:
        collector.collect({HOSTED})
        clock.now += GRACE
        assert collector.collect({HOSTED}) == [] and (closing / "ballot").exists()
    finally:
        os.close(engine_lock)
    # Past its grace period already: removed at the next call, without waiting again.
    assert collector.collect({HOSTED}) == [closing] and not closing.exists()


def test_grace_zero_removes_at_the_first_call(tmp_path, clock):
    make_replica(tmp_path, *HOSTED)
    stale = make_replica(tmp_path, 1, 1)
    assert UnassignedReplicaCollector(tmp_path, 0, clock).collect({HOSTED}) == [stale]
    assert not stale.exists()


def test_a_restart_restarts_the_clock(tmp_path, clock):
    make_replica(tmp_path, *HOSTED)
    stale = make_replica(tmp_path, 1, 1)
    UnassignedReplicaCollector(tmp_path, GRACE, clock).collect({HOSTED})
    clock.now += GRACE - 1
    restarted = UnassignedReplicaCollector(tmp_path, GRACE, clock)
    assert restarted.collect({HOSTED}) == []
    clock.now += GRACE - 1
    assert restarted.collect({HOSTED}) == [] and stale.exists()
    clock.now += 1
    assert restarted.collect({HOSTED}) == [stale]


def test_filesystem_errors_are_logged_not_raised(tmp_path, clock, collector, monkeypatch):
    assert collector.collect({HOSTED}) == []  # no replica directory yet: nothing to say
    make_replica(tmp_path, *HOSTED)
    stale = make_replica(tmp_path, 1, 1)
    collector.collect({HOSTED})
    clock.now += GRACE
    # remove_replica_dir ignores errors (a file it may not delete, a disk error): the directory stays.
    monkeypatch.setattr(garbage, "remove_replica_dir", lambda path: None)
    with LogCapture() as logs:
        assert collector.collect({HOSTED}) == []
        assert collector.collect({HOSTED}) == []  # retried, but not logged again at once
    warnings = [e for e in logs.events if e.get("path") == str(stale) and e["log_level"] == LogLevel.warn]
    assert len(warnings) == 1
    monkeypatch.undo()
    assert collector.collect({HOSTED}) == [stale]

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(garbage.os, "scandir", unreadable)
    with LogCapture() as logs:
        assert collector.collect({HOSTED}) == []
    assert any(e["log_level"] == LogLevel.warn and "cannot list" in e["log_format"] for e in logs.events)


class StubReplica:
    """Stands in for a hosted PartitionReplica in the beacon path."""

    app_name, partition_count = "temp", 2

    def report(self):
        return None

    def on_config(self, config) -> None:
        pass

    def on_lease(self, until: float) -> None:
        pass

    def close(self) -> None:
        pass


@pytest_twisted.ensureDeferred
async def test_a_beacon_reply_collects_unassigned_directories(tmp_path):
    address = "127.0.0.1:1"
    node = ReplicaServer(NodeConfig(data_dir=str(tmp_path), gc_unassigned_replica_seconds=0), address=address)
    node.replicas[HOSTED] = StubReplica()
    hosted, stale = make_replica(tmp_path, *HOSTED), make_replica(tmp_path, 1, 1)
    assignment = PartitionConfiguration(HOSTED, 3, primary=address).to_wire()
    moved_away = make_replica(tmp_path, 2, 0)
    node.pool.call = lambda *args: defer.succeed({"assignments": [assignment], "purged_app_ids": [],
                                                  "available_app_ids": [1, 2]})
    try:
        await node.send_beacon()
    finally:
        await node.stop()
    assert hosted.exists() and not stale.exists() and not moved_away.exists()
