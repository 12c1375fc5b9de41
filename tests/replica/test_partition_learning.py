"""The replica edge around learned checkpoints (partition.py): what reaches the core, and what an install
that fails does."""

from __future__ import annotations

import pytest_twisted

from pegasus_node.config import NodeConfig
from pegasus_node.replica.checkpoint_download import DownloadedCheckpoint
from pegasus_node.replica.partition import ERROR, PartitionReplica
from pegasus_node.replica.server import ReplicaServer
from pegasus_node.replication import effects as fx
from pegasus_node.replication.config import PartitionConfiguration
from pegasus_node.replication.messages import LearnResponse
from pegasus_node.storage.checkpoint import CheckpointSnapshot, write_checkpoint
from tests.twisted_rpc.rpc_test_support import LogCapture

GPID = (1, 0)


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
    assert replica.status != ERROR and replica.checkpoint_decree == 10 == replica.engine.last_applied_decree
    assert not part.exists()
    assert replica.status_entry()["learned_checkpoint"] == downloaded.summary()


@pytest_twisted.ensureDeferred
async def test_inline_checkpoint_bytes_from_an_older_primary_are_still_installed(replica, tmp_path):
    replica.run([fx.InstallCheckpoint(GPID, 10, checkpoint_file(tmp_path / "primary", 10).read_bytes())])
    assert replica.status != ERROR and replica.checkpoint_decree == 10
    replica.run([fx.InstallCheckpoint(GPID, 11, b"damaged")])
    assert replica.status == ERROR
    assert list(replica.directory.glob("*.learn")) == []
