"""The replica edge around learned checkpoints (partition.py): what reaches the core, and what an install
that fails does."""

from __future__ import annotations

import dataclasses

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads

from pegasus_node.config import NodeConfig
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.replica.checkpoint_download import DownloadedCheckpoint
from pegasus_node.replica import checkpoint_install
from pegasus_node.replica.checkpoint_source import load_learn_state
from pegasus_node.replica.partition import _EFFECT_HANDLERS, ERROR, PartitionReplica
from pegasus_node.replica.server import ReplicaServer
from pegasus_node.replication import effects as fx
from pegasus_node.replication.config import PartitionConfiguration
from pegasus_node.replication.messages import LearnResponse
from pegasus_node.storage.checkpoint import CheckpointSnapshot, checkpoint_path, write_checkpoint
from tests.twisted_rpc.rpc_test_support import LogCapture

GPID = (1, 0)
LIMIT = 4 << 20  # what fits in a learn response


@pytest_twisted.async_yield_fixture
async def replica(tmp_path):
    server = ReplicaServer(NodeConfig(data_dir=str(tmp_path)), address="127.0.0.1:1")
    replica = PartitionReplica(server, GPID)
    await replica.open()
    yield replica
    replica.close()
    await server.stop()


def learn_response(checkpoint) -> LearnResponse:
    config = PartitionConfiguration(GPID, 3, "127.0.0.1:2", (), ("127.0.0.1:1",))
    return LearnResponse(GPID, 3, "127.0.0.1:2", config, 1, 10, 10, checkpoint, ())


@pytest_twisted.ensureDeferred
async def test_a_learn_response_whose_checkpoint_is_no_reference_never_reaches_the_core(replica):
    seen = []
    replica.core.on_message = lambda now, message: seen.append(message) or []
    for checkpoint in ("/etc/passwd", {"file": "../../ballot", "size": 1, "decree": 10}, 42):
        with LogCapture() as logged:
            replica.on_message(learn_response(checkpoint))
        assert any("neither bytes nor a checkpoint reference" in e.get("log_format", "") for e in logged.events)
    assert seen == []
    replica.on_message(learn_response(None))
    assert len(seen) == 1


@pytest_twisted.ensureDeferred
async def test_a_checkpoint_that_cannot_be_installed_stops_the_replica_in_error(replica):
    part = replica.checkpoint_downloader.path
    part.write_bytes(b"not a checkpoint")
    downloaded = DownloadedCheckpoint(part, 10, 16, "127.0.0.1:2", 1, 0.1)
    replica.checkpoint_downloader.downloaded = downloaded
    applied = []
    replica.engine.apply = applied.append  # nothing after the failed install may run
    replica.run([fx.InstallCheckpoint(GPID, 10, downloaded), fx.ApplyMutation(GPID, None)])
    await replica.idle()
    assert replica.status == ERROR and replica.core is None and applied == []
    assert "cannot install the checkpoint learned at decree 10" in replica.error_message
    assert "restart this replica server" in replica.error_message
    assert not part.exists() and replica.checkpoint_downloader.downloaded is None
    assert replica.status_entry()["error"] == replica.error_message


def checkpoint_file(directory, decree: int):
    return write_checkpoint(directory, CheckpointSnapshot(decree, 0, []), fsync=False)


@pytest_twisted.ensureDeferred
async def test_a_downloaded_checkpoint_is_installed_and_its_file_removed(replica, tmp_path):
    part = replica.checkpoint_downloader.path
    part.write_bytes(checkpoint_file(tmp_path / "primary", 10).read_bytes())
    downloaded = DownloadedCheckpoint(part, 10, part.stat().st_size, "127.0.0.1:2", 3, 0.1)
    replica.checkpoint_downloader.downloaded = downloaded
    replica.run([fx.InstallCheckpoint(GPID, 10, downloaded)])
    await replica.idle()
    assert replica.status != ERROR and replica.checkpoint_decree == 10 == replica.engine.last_applied_decree
    assert not part.exists()
    assert replica.status_entry()["learned_checkpoint"] == downloaded.summary()


@pytest_twisted.ensureDeferred
async def test_inline_checkpoint_bytes_from_an_older_primary_are_still_installed(replica, tmp_path):
    replica.run([fx.InstallCheckpoint(GPID, 10, checkpoint_file(tmp_path / "primary", 10).read_bytes())])
    await replica.idle()
    assert replica.status != ERROR and replica.checkpoint_decree == 10
    replica.run([fx.InstallCheckpoint(GPID, 11, b"damaged")])
    await replica.idle()
    assert replica.status == ERROR
    assert list(replica.directory.glob("*.learn")) == []


def status_change(note: str) -> fx.StatusChanged:
    """An effect with no side effect but a log line, to trace the order effects run in."""
    return fx.StatusChanged(GPID, 3, note, note)


@pytest_twisted.ensureDeferred
async def test_effects_after_an_install_wait_for_it_and_keep_their_order(replica, tmp_path, monkeypatch):
    """The install runs on a worker thread; the reactor goes on, and the core's later effects (here from a
    follow-up list and from an event that arrives meanwhile) run after it, in the order they would have."""
    ran = []
    monkeypatch.setitem(_EFFECT_HANDLERS, fx.StatusChanged,
                        lambda self, effect: ran.append((effect.old, self.engine.last_applied_decree)))
    monkeypatch.setitem(_EFFECT_HANDLERS, fx.ApplyMutation, lambda self, effect: [status_change("follow-up")])
    source = checkpoint_file(tmp_path / "primary", 10).read_bytes()
    replica.run([status_change("before"), fx.ApplyMutation(GPID, None), fx.InstallCheckpoint(GPID, 10, source),
                 status_change("after")])
    assert replica.status_entry()["installing_checkpoint"] is True
    assert ran == [("before", 0)]
    replica.run([status_change("event meanwhile")])
    assert ran == [("before", 0)]
    await replica.idle()
    assert ran == [("before", 0), ("after", 10), ("follow-up", 10), ("event meanwhile", 10)]
    assert replica.status_entry()["installing_checkpoint"] is False


@pytest_twisted.ensureDeferred
async def test_an_install_waits_for_a_checkpoint_being_written_and_blocks_new_ones(replica, tmp_path):
    gate = defer.Deferred()
    real_write = replica.engine.write_checkpoint
    replica.engine.write_checkpoint = lambda snapshot: threads.blockingCallFromThread(reactor, lambda: gate) \
        or real_write(snapshot)
    writing = replica.checkpoint(force=True)
    source = checkpoint_file(tmp_path / "primary", 10).read_bytes()
    replica.run([fx.InstallCheckpoint(GPID, 10, source)])
    assert replica.engine.last_applied_decree == 0 and not writing.called
    gate.callback(None)
    assert (await writing) == 0
    await replica.idle()
    assert replica.checkpoint_decree == 10 == replica.engine.last_applied_decree
    assert replica.engine.latest_checkpoint_path == checkpoint_path(replica.engine.directory / "checkpoints", 10)


@pytest_twisted.ensureDeferred
async def test_a_replica_closed_during_an_install_closes_its_engine_when_it_ends(replica, tmp_path):
    source = checkpoint_file(tmp_path / "primary", 10).read_bytes()
    replica.run([fx.InstallCheckpoint(GPID, 10, source)])
    engine = replica.engine
    replica.close()
    assert replica.engine is engine  # the worker thread still uses it
    await replica.idle()
    assert replica.engine is None


@pytest_twisted.ensureDeferred
async def test_a_full_disk_while_writing_inline_checkpoint_bytes_is_a_clear_error(replica, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_install.tempfile, "NamedTemporaryFile", no_space)
    replica.run([fx.InstallCheckpoint(GPID, 10, b"checkpoint bytes")])
    await replica.idle()
    assert replica.status == ERROR
    assert "No space left on device" in replica.error_message and "decree 10" in replica.error_message


@pytest_twisted.ensureDeferred
async def test_the_checkpoint_goes_by_name_or_to_an_older_learner_by_value(replica):
    decree = await replica.checkpoint(force=True)
    path = replica.engine.latest_checkpoint_path
    load = fx.LoadLearnState(GPID, 1, "127.0.0.1:9", 1, 5)
    _, base, checkpoint, _ = load_learn_state(replica.engine, load, LIMIT)
    assert (base, checkpoint) == (decree, {"file": path.name, "size": path.stat().st_size, "decree": decree})
    _, base, checkpoint, _ = load_learn_state(replica.engine, dataclasses.replace(load, by_reference=False), LIMIT)
    assert (base, checkpoint) == (decree, path.read_bytes())


@pytest_twisted.ensureDeferred
async def test_a_checkpoint_too_big_for_a_response_is_not_sent_to_an_older_learner(replica):
    await replica.checkpoint(force=True)
    size = replica.engine.latest_checkpoint_path.stat().st_size
    load = fx.LoadLearnState(GPID, 1, "127.0.0.1:9", 1, 5, by_reference=False)
    with pytest.raises(PegasusError, match="older version.*upgrade that replica server") as raised:
        load_learn_state(replica.engine, load, size - 1)
    assert raised.value.code == ErrorCode.ERR_VALUE_TOO_LARGE
    assert load_learn_state(replica.engine, dataclasses.replace(load, by_reference=True), size - 1)[2]["size"] == size
