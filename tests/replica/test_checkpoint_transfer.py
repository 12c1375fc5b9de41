"""Learning a checkpoint in chunks: the ``replica.checkpoint_chunk`` method (checkpoint_source.py) and the
learner's fetch (checkpoint_download.py)."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest
import pytest_twisted
from twisted.internet import defer

from pegasus_node.config import NodeConfig
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.replica import checkpoint_source
from pegasus_node.replica.checkpoint_download import CheckpointDownloader, DownloadedCheckpoint
from pegasus_node.replica.checkpoint_source import CHUNK_METHOD, CheckpointReference, reference_checkpoint
from pegasus_node.replica.server import ReplicaServer
from pegasus_node.replication.config import PartitionConfiguration
from pegasus_node.replication.messages import LearnResponse, decode_message
from pegasus_node.storage.checkpoint import checkpoint_path
from pegasus_node.twisted_rpc import RpcClientPool, RpcServer
from tests.twisted_rpc.rpc_test_support import LogCapture, wait_for

GPID = (1, 0)
FRAME_LIMIT = 64 * 1024  # so a chunk is at most 32 KiB
PRIMARY = "127.0.0.1:9"


class HostedReplica:
    """Stands in for a PartitionReplica: the chunk method only needs its directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def close(self) -> None:
        pass


def write_checkpoint_file(replica_dir: Path, decree: int, size: int) -> Path:
    """A file under a checkpoint's name (the transfer never parses it; the engine does, on install)."""
    path = checkpoint_path(replica_dir / "checkpoints", decree)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


@pytest_twisted.async_yield_fixture
async def source(tmp_path):
    """A replica server on 127.0.0.1 hosting partition 1.0 with one checkpoint of 100 KB, and a pool."""
    rpc = RpcServer("replica", max_frame_bytes=FRAME_LIMIT)
    node = ReplicaServer(NodeConfig(data_dir=str(tmp_path / "server"), max_frame_bytes=FRAME_LIMIT),
                         address="127.0.0.1:0")
    node.register(rpc)
    replica_dir = tmp_path / "server" / "replica" / "1.0"
    node.replicas[GPID] = HostedReplica(replica_dir)
    path = write_checkpoint_file(replica_dir, 7, 100_000)
    address = f"127.0.0.1:{rpc.listen(0).getHost().port}"
    pool = RpcClientPool()
    yield address, pool, path
    await pool.close()
    await node.stop()
    await rpc.stop()


async def chunk(pool, address, file, offset=0, length=1000, gpid=(1, 0)):
    return await pool.call(address, CHUNK_METHOD, {"gpid": list(gpid), "file": file, "offset": offset,
                                                   "length": length}, 5.0)


async def chunk_error(pool, address, **kwargs) -> PegasusError:
    with pytest.raises(PegasusError) as info:
        await chunk(pool, address, **kwargs)
    return info.value


# ----- the chunk method -----


@pytest_twisted.ensureDeferred
async def test_a_chunk_is_the_byte_range_and_the_file_size(source):
    address, pool, path = source
    content = path.read_bytes()
    reply = await chunk(pool, address, path.name, offset=500, length=1000)
    assert reply == {"data": content[500:1500], "size": len(content)}
    tail = await chunk(pool, address, path.name, offset=len(content) - 10, length=1000)
    assert tail["data"] == content[-10:]


@pytest_twisted.ensureDeferred
async def test_a_chunk_is_capped_well_under_the_frame_limit(source):
    address, pool, path = source
    reply = await chunk(pool, address, path.name, offset=0, length=10 << 20)
    assert len(reply["data"]) == FRAME_LIMIT // 2
    assert reply["data"] == path.read_bytes()[:FRAME_LIMIT // 2]


@pytest_twisted.ensureDeferred
async def test_at_the_end_a_chunk_is_empty_and_past_it_an_error(source):
    address, pool, path = source
    size = path.stat().st_size
    assert await chunk(pool, address, path.name, offset=size) == {"data": b"", "size": size}
    error = await chunk_error(pool, address, file=path.name, offset=size + 1)
    assert error.code == ErrorCode.ERR_INVALID_PARAMETERS and "past the end" in error.message
    for offset, length in ((-1, 10), (0, 0)):
        error = await chunk_error(pool, address, file=path.name, offset=offset, length=length)
        assert error.code == ErrorCode.ERR_INVALID_PARAMETERS


@pytest_twisted.ensureDeferred
async def test_a_partition_not_hosted_here_is_not_found(source):
    address, pool, path = source
    error = await chunk_error(pool, address, file=path.name, gpid=(9, 9))
    assert error.code == ErrorCode.ERR_OBJECT_NOT_FOUND and "not hosted" in error.message


@pytest.mark.parametrize("name", [
    "../../../etc/passwd", "/etc/passwd", "../ballot", "ballot", "checkpoint.7.ckpt",
    "checkpoint.00000000000000000007.ckpt.tmp", "checkpoint.00000000000000000007.ckpt/../../ballot",
    "checkpoints/checkpoint.00000000000000000007.ckpt", "checkpoint.0000000000000000000٧.ckpt", "",
])
@pytest_twisted.ensureDeferred
async def test_only_checkpoint_file_names_are_served(source, name):
    address, pool, path = source
    (path.parent.parent / "ballot").write_text("3")  # a real file next to the checkpoints
    error = await chunk_error(pool, address, file=name)
    assert error.code == ErrorCode.ERR_INVALID_PARAMETERS and "not a checkpoint file name" in error.message


@pytest_twisted.ensureDeferred
async def test_a_checkpoint_collected_since_it_was_named_is_gone(source, monkeypatch):
    address, pool, path = source
    error = await chunk_error(pool, address, file=checkpoint_path(Path(), 5).name)
    assert error.code == ErrorCode.ERR_OBJECT_NOT_FOUND
    assert "is gone" in error.message and "learns again" in error.message

    real_read = checkpoint_source.read_range

    def collected_meanwhile(file, offset, length):  # removed between the listing and the read
        file.unlink()
        return real_read(file, offset, length)

    monkeypatch.setattr(checkpoint_source, "read_range", collected_meanwhile)
    error = await chunk_error(pool, address, file=path.name)
    assert error.code == ErrorCode.ERR_OBJECT_NOT_FOUND and "is gone" in error.message


# ----- references -----


def test_a_reference_names_file_size_and_decree_and_survives_the_wire(tmp_path):
    path = write_checkpoint_file(tmp_path, 42, 3000)
    reference = reference_checkpoint(path)
    assert reference == CheckpointReference(path.name, 3000, 42)
    response = learn_response(7, reference)
    wire = msgpack.unpackb(msgpack.packb(response.to_wire(), use_bin_type=True), raw=False)
    decoded = decode_message(wire)
    assert decoded == response and CheckpointReference.from_wire(decoded.checkpoint) == reference


@pytest.mark.parametrize("wire", [
    None, b"bytes", "checkpoint.00000000000000000042.ckpt", {},
    {"file": "checkpoint.00000000000000000042.ckpt", "size": 1, "decree": 41},  # not the name's decree
    {"file": "../checkpoint.00000000000000000042.ckpt", "size": 1, "decree": 42},
    {"file": "checkpoint.00000000000000000042.ckpt", "size": -1, "decree": 42},
    {"file": "checkpoint.00000000000000000042.ckpt", "size": True, "decree": 42},
    {"file": "checkpoint.00000000000000000042.ckpt", "size": 1},
])
def test_malformed_references_are_refused(wire):
    assert CheckpointReference.from_wire(wire) is None


# ----- the learner's fetch -----


def learn_response(learn_id: int, reference: CheckpointReference | None, mutations=(),
                   sender: str = PRIMARY) -> LearnResponse:
    config = PartitionConfiguration(GPID, 3, sender, ("127.0.0.1:10",), ("127.0.0.1:11",))
    return LearnResponse(GPID, 3, sender, config, learn_id, 100, reference.decree if reference else 0,
                         reference.to_wire() if reference else None, tuple(mutations))


class FilePool:
    """Answers ``replica.checkpoint_chunk`` from local files, like the method does, in chunks of ``chunk``
    bytes; with ``hold``, each answer waits until ``release``."""

    def __init__(self, directory: Path, chunk: int = 1000) -> None:
        self.directory = directory
        self.chunk = chunk
        self.hold = False
        self.held: list[tuple[defer.Deferred, dict]] = []
        self.calls: list[dict] = []
        self.answer = self._read

    def call(self, address, method, body, timeout):
        assert method == CHUNK_METHOD and address == PRIMARY
        self.calls.append(body)
        d = defer.Deferred()
        if self.hold:
            self.held.append((d, body))
        else:
            self._answer(d, body)
        return d

    def release(self) -> None:
        held, self.held = self.held, []
        for d, body in held:
            self._answer(d, body)

    def _answer(self, d: defer.Deferred, body: dict) -> None:
        try:
            d.callback(self.answer(body))
        except PegasusError as exc:
            d.errback(exc)

    def _read(self, body: dict) -> dict:
        return checkpoint_source.read_range(self.directory / body["file"], body["offset"],
                                            min(self.chunk, body["length"]))


class Learner:
    """A CheckpointDownloader with a recording ``deliver`` and a settable commit point."""

    def __init__(self, tmp_path: Path, pool) -> None:
        self.directory = tmp_path / "learner"
        self.directory.mkdir()
        self.delivered: list[LearnResponse] = []
        self.committed = 0
        self.downloader = CheckpointDownloader(GPID, self.directory, pool, self.delivered.append,
                                               lambda: self.committed)

    def leftovers(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir())


@pytest.fixture
def primary_files(tmp_path):
    directory = tmp_path / "primary"
    path = write_checkpoint_file(directory, 50, 10_500)
    return directory / "checkpoints", path


def fetch_setup(primary_files, tmp_path, chunk: int = 1000) -> tuple[FilePool, Learner, CheckpointReference]:
    """A pool serving the primary's checkpoint, a learner, and the reference to that checkpoint."""
    directory, path = primary_files
    pool = FilePool(directory, chunk)
    return pool, Learner(tmp_path, pool), reference_checkpoint(path)


@pytest_twisted.ensureDeferred
async def test_the_learner_fetches_in_chunks_and_hands_the_core_the_file(primary_files, tmp_path):
    pool, learner, reference = fetch_setup(primary_files, tmp_path)
    learner.downloader.offer(learn_response(1, reference, mutations=["m51"]), reference)
    await wait_for(lambda: learner.delivered)
    [response] = learner.delivered
    downloaded = response.checkpoint
    assert isinstance(downloaded, DownloadedCheckpoint)
    assert (response.learn_id, response.checkpoint_decree, response.mutations) == (1, 50, ("m51",))
    assert downloaded.path.read_bytes() == primary_files[1].read_bytes() and downloaded.chunks == 11
    learner.downloader.used(downloaded, installed=True)
    assert learner.leftovers() == []
    assert learner.downloader.status()["learned_checkpoint"]["decree"] == 50


@pytest_twisted.ensureDeferred
async def test_over_real_rpc_a_checkpoint_bigger_than_a_frame_arrives_whole(source, tmp_path):
    address, pool, path = source
    learner = Learner(tmp_path, pool)
    reference = reference_checkpoint(path)
    learner.downloader.offer(learn_response(1, reference, sender=address), reference)
    await wait_for(lambda: learner.delivered)
    downloaded = learner.delivered[0].checkpoint
    assert downloaded.path.read_bytes() == path.read_bytes()
    assert downloaded.chunks == 4 and downloaded.source == address  # 100 KB in chunks of 32 KiB


@pytest_twisted.ensureDeferred
async def test_responses_during_a_fetch_wait_and_the_newest_goes_with_the_file(primary_files, tmp_path):
    pool, learner, reference = fetch_setup(primary_files, tmp_path, chunk=4000)
    pool.hold = True
    for learn_id in (1, 2, 3):
        learner.downloader.offer(learn_response(learn_id, reference, mutations=[f"m{learn_id}"]), reference)
    await wait_for(lambda: pool.held)
    assert len(pool.held) == 1, "one fetch at a time"
    assert learner.downloader.status()["checkpoint_download"]["bytes"] == 10_500
    pool.hold = False
    pool.release()
    await wait_for(lambda: learner.delivered)
    assert [(r.learn_id, r.mutations) for r in learner.delivered] == [(3, ("m3",))]
    assert len(pool.calls) == 3


@pytest_twisted.ensureDeferred
async def test_a_fetched_file_the_core_did_not_take_goes_with_the_next_response(primary_files, tmp_path):
    pool, learner, reference = fetch_setup(primary_files, tmp_path, chunk=4000)
    learner.downloader.offer(learn_response(1, reference), reference)
    await wait_for(lambda: learner.delivered)
    calls = len(pool.calls)
    # The core had asked again (learn_id 1 was stale), and meanwhile the primary checkpointed at 60.
    newer = CheckpointReference(checkpoint_path(Path(), 60).name, 20_000, 60)
    learner.downloader.offer(learn_response(2, newer, mutations=["m61"]), newer)
    second = learner.delivered[1]
    assert (second.learn_id, second.checkpoint_decree, second.mutations) == (2, 50, ())
    assert second.checkpoint is learner.delivered[0].checkpoint and len(pool.calls) == calls
    # Once the learner is past it, it is deleted and the newer one is fetched.
    learner.committed = 55
    write_checkpoint_file(pool.directory.parent, 60, 20_000)
    newer = reference_checkpoint(pool.directory / newer.file)
    learner.downloader.offer(learn_response(3, newer), newer)
    await wait_for(lambda: len(learner.delivered) == 3)
    assert learner.delivered[2].checkpoint.decree == 60


@pytest_twisted.ensureDeferred
async def test_a_checkpoint_the_learner_already_holds_is_not_fetched(primary_files, tmp_path):
    pool, learner, reference = fetch_setup(primary_files, tmp_path)
    learner.committed = 50
    learner.downloader.offer(learn_response(1, reference, mutations=["m51"]), reference)
    [response] = learner.delivered
    assert response.checkpoint is None and response.mutations == ("m51",) and pool.calls == []


def fail_with_gone(body):
    raise PegasusError(ErrorCode.ERR_OBJECT_NOT_FOUND, "checkpoint x is gone")


@pytest.mark.parametrize("answer, complaint", [
    (fail_with_gone, "is gone"),
    (lambda body: {"data": b"", "size": 10_500}, "does not fit"),
    (lambda body: {"data": b"x" * 10, "size": 999}, "is 999 bytes now"),
    (lambda body: {"data": b"x" * 11_000, "size": 10_500}, "does not fit"),
    (lambda body: {"size": 10_500}, "missing field 'data'"),
])
@pytest_twisted.ensureDeferred
async def test_a_failed_fetch_is_logged_cleaned_up_and_dropped(primary_files, tmp_path, answer, complaint):
    pool, learner, reference = fetch_setup(primary_files, tmp_path)
    pool.answer = answer
    with LogCapture() as logged:
        learner.downloader.offer(learn_response(1, reference), reference)
        await wait_for(lambda: "checkpoint_download" not in learner.downloader.status())
    assert learner.delivered == [] and learner.leftovers() == []
    warnings = [e for e in logged.events if "failed after" in e.get("log_format", "")]
    assert len(warnings) == 1 and complaint in str(warnings[0]["error"])
    # The next response starts a new fetch.
    pool.answer = pool._read
    learner.downloader.offer(learn_response(2, reference), reference)
    await wait_for(lambda: learner.delivered)


@pytest_twisted.ensureDeferred
async def test_closing_the_replica_abandons_its_fetch(primary_files, tmp_path):
    pool, learner, reference = fetch_setup(primary_files, tmp_path, chunk=4000)
    pool.hold = True
    learner.downloader.offer(learn_response(1, reference), reference)
    pool.release()  # the first chunk is written; the second is in flight
    await wait_for(lambda: pool.held)
    with LogCapture() as logged:
        learner.downloader.close()
        await wait_for(lambda: "checkpoint_download" not in learner.downloader.status())
    assert learner.delivered == [] and learner.leftovers() == []
    assert not [e for e in logged.events if "failed" in e.get("log_format", "")]


def fail_after(count: int, code: ErrorCode, read):
    """An answer that serves ``count`` chunks, then fails every call with ``code``."""
    served = []

    def answer(body):
        if len(served) >= count:
            raise PegasusError(code, "the connection to 127.0.0.1:9 was lost")
        served.append(body["offset"])
        return read(body)

    return answer


@pytest_twisted.ensureDeferred
async def test_a_transfer_that_broke_off_resumes_where_it_stopped(primary_files, tmp_path):
    pool, learner, reference = fetch_setup(primary_files, tmp_path)
    pool.answer = fail_after(4, ErrorCode.ERR_NETWORK_FAILURE, pool._read)
    with LogCapture() as logged:
        learner.downloader.offer(learn_response(1, reference), reference)
        await wait_for(lambda: "checkpoint_download" not in learner.downloader.status())
    assert learner.delivered == [] and learner.leftovers() == ["learning-checkpoint.part"]
    assert learner.downloader.status()["checkpoint_download_interrupted"]["bytes_done"] == 4000
    assert any("resumes this file" in e.get("resume", "") for e in logged.events)

    pool.answer, pool.calls = pool._read, []
    learner.downloader.offer(learn_response(2, reference), reference)
    await wait_for(lambda: learner.delivered)
    assert pool.calls[0]["offset"] == 4000 and len(pool.calls) == 7  # 6500 bytes left, in chunks of 1000
    downloaded = learner.delivered[0].checkpoint
    assert downloaded.path.read_bytes() == primary_files[1].read_bytes()


async def interrupted_fetch(primary_files, tmp_path, after_chunks: int, code: ErrorCode):
    """A learner whose fetch broke off after ``after_chunks`` chunks, with ``code``."""
    pool, learner, reference = fetch_setup(primary_files, tmp_path)
    pool.answer = fail_after(after_chunks, code, pool._read)
    learner.downloader.offer(learn_response(1, reference), reference)
    await wait_for(lambda: "checkpoint_download_interrupted" in learner.downloader.status())
    return pool, learner


@pytest_twisted.ensureDeferred
async def test_an_interrupted_fetch_starts_over_for_another_file(primary_files, tmp_path):
    pool, learner = await interrupted_fetch(primary_files, tmp_path, 3, ErrorCode.ERR_TIMEOUT)
    # The primary checkpointed again: the learner is told of another file.
    newer = reference_checkpoint(write_checkpoint_file(pool.directory.parent, 60, 5_000))
    pool.answer, pool.calls = pool._read, []
    learner.downloader.offer(learn_response(2, newer), newer)
    await wait_for(lambda: learner.delivered)
    assert pool.calls[0]["offset"] == 0
    assert learner.delivered[0].checkpoint.path.read_bytes() == (pool.directory / newer.file).read_bytes()


@pytest_twisted.ensureDeferred
async def test_an_interrupted_fetch_is_removed_when_the_replica_closes(primary_files, tmp_path):
    _, learner = await interrupted_fetch(primary_files, tmp_path, 2, ErrorCode.ERR_BUSY)
    learner.downloader.close()
    assert learner.leftovers() == [] and learner.downloader.status() == {}


@pytest_twisted.ensureDeferred
async def test_a_checkpoint_gone_midway_leaves_nothing_to_resume(primary_files, tmp_path):
    pool, learner, reference = fetch_setup(primary_files, tmp_path)
    pool.answer = fail_after(3, ErrorCode.ERR_OBJECT_NOT_FOUND, pool._read)
    learner.downloader.offer(learn_response(1, reference), reference)
    await wait_for(lambda: "checkpoint_download" not in learner.downloader.status())
    assert learner.leftovers() == [] and learner.downloader.status() == {}
