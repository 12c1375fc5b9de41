"""The server-wide log writer: group commit over every replica's WAL with one shared-log fsync per cycle."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor

from pegasus_node.errors import ErrorCode
from pegasus_node.fail_points import FailPointRegistry
from pegasus_node.replica.log_writer import ServerLogWriter
from pegasus_node.storage.shared_log import SharedLog
from pegasus_node.storage.wal import WriteAheadLog
from tests.storage.storage_testutil import mut
from tests.storage.test_shared_log import decrees_in, lose_unsynced_bytes, put, wal_dir


class Replica:
    """Stands where a PartitionReplica does: records what the writer reports."""

    def __init__(self, writer: ServerLogWriter, tmp_path, gpid) -> None:
        self.wal = WriteAheadLog.open(wal_dir(tmp_path, gpid), fsync=True, segment_max_bytes=600)
        self.durable: list[int] = []
        self.failures = []
        self.waiters: dict[int, defer.Deferred] = {}
        self.log = writer.attach(gpid, self.wal, self._durable, self.failures.append)

    def _durable(self, tag: int) -> None:
        self.durable.append(tag)
        for wanted in [t for t in self.waiters if t <= tag]:
            self.waiters.pop(wanted).callback(tag)

    def append(self, decree: int) -> None:
        self.log.append(mut(decree, put(decree)), decree)

    def until_durable(self, tag: int) -> defer.Deferred:
        if self.durable and self.durable[-1] >= tag:
            return defer.succeed(tag)
        return self.waiters.setdefault(tag, defer.Deferred())


def open_writer(tmp_path, fail_points=None, rotate_bytes=32 << 20):
    shared, _ = SharedLog.recover(tmp_path / "slog", lambda gpid: wal_dir(tmp_path, gpid), fsync=True,
                                  rotate_bytes=rotate_bytes)
    return ServerLogWriter(shared, fail_points or FailPointRegistry(), reactor), shared


@pytest_twisted.ensureDeferred
async def test_every_replica_hears_durable_in_order_and_a_power_loss_keeps_it(tmp_path):
    writer, shared = open_writer(tmp_path)
    replicas = [Replica(writer, tmp_path, (1, p)) for p in range(3)]
    for decree in range(1, 41):
        for replica in replicas:
            replica.append(decree)
        if decree % 7 == 0:
            await deferLater(0)  # let a cycle start mid-way
    await defer.gatherResults([r.until_durable(40) for r in replicas])
    for replica in replicas:
        assert replica.durable == sorted(replica.durable) and replica.durable[-1] == 40
        assert replica.failures == []
    assert writer.stats()["cycles"] < 3 * 40  # batches of several replicas share cycles
    writer.stop()
    for replica in replicas:
        replica.log.detach()
        replica.wal.close()
    shared.close()

    for p in range(3):
        lose_unsynced_bytes(tmp_path, (1, p))
    recovered, report = SharedLog.recover(tmp_path / "slog", lambda gpid: wal_dir(tmp_path, gpid))
    recovered.close()
    assert report.replicas == 3
    for p in range(3):
        assert decrees_in(tmp_path, (1, p)) == list(range(1, 41))


@pytest_twisted.ensureDeferred
async def test_a_failed_shared_log_write_fails_every_replica_for_good(tmp_path):
    fail_points = FailPointRegistry()
    writer, shared = open_writer(tmp_path, fail_points)
    first, second = Replica(writer, tmp_path, (1, 0)), Replica(writer, tmp_path, (1, 1))
    first.append(1)
    await first.until_durable(1)
    fail_points.set("wal.fsync", "error")
    first.append(2)
    while not first.failures:
        await deferLater(0.01)
    assert first.failures[0].code == ErrorCode.ERR_DISK_IO
    assert "injected WAL write failure" in first.failures[0].message
    assert len(second.failures) == 1  # it wrote nothing, but its writes would go to the same broken log
    assert writer.stats()["failed"]
    fail_points.clear("wal.fsync")
    second.append(1)  # refused at once: the shared log's state is unknown until a restart
    assert len(second.failures) == 1 and second.durable == []
    assert first.durable == [1]
    writer.stop()
    shared.close()


@pytest_twisted.ensureDeferred
async def test_the_shared_log_rotates_once_the_wals_are_synced(tmp_path):
    writer, shared = open_writer(tmp_path, rotate_bytes=1 << 10)
    replica = Replica(writer, tmp_path, (1, 0))
    for decree in range(1, 61):
        replica.append(decree)
        if decree % 5 == 0:
            await replica.until_durable(decree)
    assert len(list((tmp_path / "slog").glob("slog.*.log"))) <= 2  # the active one, maybe one being replaced
    writer.stop()
    replica.log.detach()
    replica.wal.close()
    shared.close()
    recovered, report = SharedLog.recover(tmp_path / "slog", lambda gpid: wal_dir(tmp_path, gpid))
    recovered.close()
    assert report.records < 60  # older redo records went when their WAL writes were fsynced
    assert decrees_in(tmp_path, (1, 0)) == list(range(1, 61))


def deferLater(seconds: float) -> defer.Deferred:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)
