"""The write-ahead log: framing, group commit, segments, torn tails, corruption, replay rules, disk errors."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from pegasus_node.errors import ErrorCode
from pegasus_node.storage import Mutation, StorageError, WalCorruptionError, WriteAheadLog, put_op, resolve_log
from pegasus_node.storage.wal import FRAME_HEADER, encode_frame
from .storage_testutil import flip_byte, mut


def record(decree: int, ballot: int = 1, size: int = 20) -> Mutation:
    return mut(decree, put_op(b"h", b"k%06d" % decree, b"v" * size), ballot=ballot)


def write_log(directory, decrees, **options) -> list[Mutation]:
    options.setdefault("fsync", False)
    wal = WriteAheadLog.open(directory, **options)
    written = [record(d) for d in decrees]
    for m in written:
        wal.sync_append(m)
    wal.close()
    return written


def reopen(directory, **options):
    options.setdefault("fsync", False)
    wal = WriteAheadLog.open(directory, **options)
    return wal, wal.take_recovered()


def test_round_trip_and_frame_format(tmp_path):
    written = write_log(tmp_path, range(1, 6))
    [segment] = sorted(tmp_path.glob("wal.*.log"))
    assert segment.name == "wal.00000001.00000000000000000001.log"
    data = segment.read_bytes()
    assert data == b"".join(encode_frame(m) for m in written)
    length, _crc = FRAME_HEADER.unpack_from(data)
    assert Mutation.decode(data[8 : 8 + length]) == written[0]
    wal, recovered = reopen(tmp_path)
    assert recovered == written and wal.torn_tail is None
    assert (wal.first_decree, wal.last_decree, wal.total_bytes) == (1, 5, len(data))
    wal.sync_append(record(6))  # appends continue in the same segment after a restart
    assert len(list(tmp_path.glob("wal.*.log"))) == 1
    assert [m.decree for m in wal.read_from(4)] == [4, 5, 6]
    wal.close()


def test_group_commit_batches(tmp_path):
    wal = WriteAheadLog.open(tmp_path, fsync=False)
    assert wal.take_batch() is None
    for d in (1, 2, 3):
        wal.append(record(d))
    assert wal.pending_count == 3
    batch = wal.take_batch()
    assert (batch.first_decree, batch.last_decree, len(batch.mutations)) == (1, 3, 3)
    assert batch.data == b"".join(encode_frame(m) for m in batch.mutations)
    wal.append(record(4))  # accumulates while the batch is being written
    wal.write_batch(batch)
    assert wal.last_decree == 3 and [m.decree for m in wal.read_from(0)] == [1, 2, 3]
    wal.write_batch(wal.take_batch())
    assert wal.last_decree == 4
    wal.close()


def test_group_commit_with_a_writer_thread(tmp_path):
    wal = WriteAheadLog.open(tmp_path, fsync=True, segment_max_bytes=2048)
    durable: list[int] = []
    done = threading.Event()

    def writer():
        while True:
            finished = done.is_set()
            batch = wal.take_batch()
            if batch is not None:
                wal.write_batch(batch)
                durable.extend(m.decree for m in batch.mutations)
            elif finished:
                return

    thread = threading.Thread(target=writer)
    thread.start()
    for d in range(1, 301):
        wal.append(record(d))
        if d % 10 == 0:
            time.sleep(0.001)  # let batches of various sizes form
    done.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert durable == list(range(1, 301))
    wal.close()
    _, recovered = reopen(tmp_path)
    assert [m.decree for m in recovered] == list(range(1, 301))


def test_segments_roll_and_gc(tmp_path):
    frame_size = len(encode_frame(record(1)))
    write_log(tmp_path, range(1, 31), segment_max_bytes=frame_size * 10)
    names = sorted(p.name for p in tmp_path.glob("wal.*.log"))
    assert names == ["wal.00000001.00000000000000000001.log", "wal.00000002.00000000000000000011.log",
                     "wal.00000003.00000000000000000021.log"]
    wal, recovered = reopen(tmp_path, segment_max_bytes=frame_size * 10)
    assert [m.decree for m in recovered] == list(range(1, 31))
    assert wal.gc(15) == [tmp_path / names[0]]  # the second segment still holds 16..20
    assert wal.first_decree == 11
    assert wal.gc(1000) == [tmp_path / names[1]]  # never the active segment
    assert [p.name for p in wal.segment_paths] == [names[2]]
    assert [m.decree for m in wal.read_from(0)] == list(range(21, 31))
    wal.close()


def last_record_span(segment) -> tuple[int, int]:
    data = segment.read_bytes()
    offset = 0
    while True:
        length, _ = FRAME_HEADER.unpack_from(data, offset)
        end = offset + FRAME_HEADER.size + length
        if end == len(data):
            return offset, end
        offset = end


def test_torn_tail_cut_at_every_byte_of_the_last_record(tmp_path):
    source = tmp_path / "source"
    written = write_log(source, range(1, 6))
    [segment] = list(source.glob("wal.*.log"))
    start, end = last_record_span(segment)
    full = segment.read_bytes()
    for cut in range(start, end):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / segment.name).write_bytes(full[:cut])
        wal, recovered = reopen(directory)
        assert recovered == written[:-1], cut
        if cut == start:
            assert wal.torn_tail is None
        else:
            assert wal.torn_tail == (directory / segment.name, start, cut - start)
            assert (directory / segment.name).stat().st_size == start
        wal.sync_append(written[-1])  # the log goes on cleanly after the cut
        wal.close()
        assert reopen(directory)[1] == written


@pytest.mark.parametrize("where", ["length", "crc", "payload", "last byte"])
def test_corrupt_last_record_is_a_torn_tail(tmp_path, where):
    written = write_log(tmp_path, range(1, 6))
    [segment] = list(tmp_path.glob("wal.*.log"))
    start, end = last_record_span(segment)
    offset = {"length": start + 2, "crc": start + 5, "payload": start + 12, "last byte": end - 1}[where]
    flip_byte(segment, offset)
    wal, recovered = reopen(tmp_path)
    assert recovered == written[:-1]
    assert wal.torn_tail == (segment, start, end - start)


@pytest.mark.parametrize("where", ["length", "crc", "payload"])
def test_corrupt_middle_record_is_an_error(tmp_path, where):
    write_log(tmp_path, range(1, 11))
    [segment] = list(tmp_path.glob("wal.*.log"))
    frame_size = len(encode_frame(record(1)))
    start = 3 * frame_size  # the fourth record; six valid ones follow it
    flip_byte(segment, start + {"length": 3, "crc": 4, "payload": 20}[where])
    before = segment.read_bytes()
    with pytest.raises(WalCorruptionError) as info:
        reopen(tmp_path)
    error = info.value
    assert error.code == ErrorCode.ERR_DISK_IO
    assert (error.segment, error.offset) == (segment, start)
    message = str(error)
    assert str(segment) in message and f"offset {start}" in message and "restore" in message
    assert segment.read_bytes() == before  # nothing was cut or skipped


def test_corrupt_record_in_a_non_last_segment_is_an_error(tmp_path):
    frame_size = len(encode_frame(record(1)))
    write_log(tmp_path, range(1, 21), segment_max_bytes=frame_size * 10)
    first = sorted(tmp_path.glob("wal.*.log"))[0]
    start, end = last_record_span(first)  # even the very end of a non-last segment
    flip_byte(first, end - 1)
    with pytest.raises(WalCorruptionError) as info:
        reopen(tmp_path)
    assert info.value.segment == first and info.value.offset == start
    # A segment cut short in the middle of the log is corruption too.
    first.write_bytes(first.read_bytes()[: end - 3])
    with pytest.raises(WalCorruptionError):
        reopen(tmp_path)


def test_resolve_log_implicit_truncation():
    log = [record(1), record(2), record(3), record(4), record(5),
           record(3, ballot=2), record(4, ballot=2)]
    assert [(m.decree, m.ballot) for m in resolve_log(log)] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    # A resent prepare (same ballot) replaces its twin; a stale lower-ballot record is ignored.
    log = [record(1), record(2, ballot=3), record(2, ballot=3), record(3, ballot=3), record(2, ballot=1)]
    assert [(m.decree, m.ballot) for m in resolve_log(log)] == [(1, 1), (2, 3), (3, 3)]
    # A re-proposal from below everything truncates it all.
    assert [(m.decree, m.ballot) for m in resolve_log([record(5), record(6), record(2, ballot=4)])] == [(2, 4)]


def test_implicit_truncation_on_replay_across_segments(tmp_path):
    frame_size = len(encode_frame(record(1)))
    wal = WriteAheadLog.open(tmp_path, fsync=False, segment_max_bytes=frame_size * 3)
    for m in [record(d) for d in range(1, 8)] + [record(4, ballot=2), record(5, ballot=2)]:
        wal.sync_append(m)
    assert [(m.decree, m.ballot) for m in wal.read_from(3)] == [(3, 1), (4, 2), (5, 2)]
    wal.close()
    _, recovered = reopen(tmp_path)
    assert [(m.decree, m.ballot) for m in recovered] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)]


class FailingDisk:
    """Makes os.write or os.pwrite (after writing half of the data) or os.fsync fail with ENOSPC on one fd."""

    def __init__(self, monkeypatch, what: str):
        self.what = what
        self.target_fd = None
        self.failures = 0
        real_write, real_pwrite, real_fsync = os.write, os.pwrite, os.fsync

        def write(fd, data):
            if self.what == "write" and fd == self.target_fd:
                self.failures += 1
                real_write(fd, bytes(data[: len(data) // 2]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        def pwrite(fd, data, offset):
            if self.what == "write" and fd == self.target_fd:
                self.failures += 1
                real_pwrite(fd, bytes(data[: len(data) // 2]), offset)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_pwrite(fd, data, offset)

        def fsync(fd):
            if self.what == "fsync" and fd == self.target_fd:
                self.failures += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_fsync(fd)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "pwrite", pwrite)
        monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("what", ["write", "fsync"])
def test_disk_full_loses_nothing_acknowledged(tmp_path, monkeypatch, what):
    wal = WriteAheadLog.open(tmp_path, fsync=True)
    acked = [record(d) for d in range(1, 6)]
    for m in acked:
        wal.sync_append(m)
    disk = FailingDisk(monkeypatch, what)
    disk.target_fd = wal._fd
    size_before = wal.total_bytes
    wal.append(record(6))
    wal.append(record(7))
    batch = wal.take_batch()
    with pytest.raises(StorageError) as info:
        wal.write_batch(batch)
    assert info.value.code == ErrorCode.ERR_DISK_IO
    assert "No space left on device" in str(info.value) and "6..7" in str(info.value)
    assert disk.failures >= 1  # (the fsync of the rollback fails too, harmlessly)
    [segment] = list(tmp_path.glob("wal.*.log"))
    assert segment.stat().st_size == size_before == wal.total_bytes  # the partial write was cut back
    assert wal.last_decree == 5

    # A restart now finds exactly the acknowledged records.
    _, recovered = reopen(tmp_path)
    assert recovered == acked

    # Or, once there is space again, the same batch is retried and everything is there once.
    disk.what = None
    wal.write_batch(batch)
    wal.close()
    wal, recovered = reopen(tmp_path)
    assert recovered == acked + list(batch.mutations) and wal.torn_tail is None


def test_failed_rollback_is_repaired_before_the_next_write(tmp_path, monkeypatch):
    wal = WriteAheadLog.open(tmp_path, fsync=False)
    wal.sync_append(record(1))
    disk = FailingDisk(monkeypatch, "write")
    disk.target_fd = wal._fd
    real_ftruncate = os.ftruncate
    calls = []

    def ftruncate(fd, length):
        calls.append(length)
        if len(calls) == 1:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_ftruncate(fd, length)

    monkeypatch.setattr(os, "ftruncate", ftruncate)
    wal.append(record(2))
    batch = wal.take_batch()
    with pytest.raises(StorageError):
        wal.write_batch(batch)
    disk.what = None
    wal.write_batch(batch)  # cuts the half-written bytes first, then writes
    wal.close()
    assert calls == [wal_size := len(encode_frame(record(1))), wal_size]
    assert reopen(tmp_path)[1] == [record(1), record(2)]


def test_write_after_close_is_an_error(tmp_path):
    wal = WriteAheadLog.open(tmp_path, fsync=False)
    wal.close()
    with pytest.raises(StorageError):
        wal.sync_append(record(1))


def test_zero_filled_tail_is_cut(tmp_path):
    written = write_log(tmp_path, range(1, 4))
    [segment] = list(tmp_path.glob("wal.*.log"))
    size = segment.stat().st_size
    with open(segment, "ab") as f:
        f.write(bytes(4096))  # what a file system may leave after a crash that extended the file
    wal, recovered = reopen(tmp_path)
    assert recovered == written and wal.torn_tail == (segment, size, 4096)


def test_torn_first_record_of_a_new_segment(tmp_path):
    frame_size = len(encode_frame(record(1)))
    written = write_log(tmp_path, range(1, 13), segment_max_bytes=frame_size * 10)
    first, last = sorted(tmp_path.glob("wal.*.log"))
    last.write_bytes(last.read_bytes()[:5])
    wal, recovered = reopen(tmp_path, segment_max_bytes=frame_size * 10)
    assert recovered == written[:10]
    assert wal.torn_tail == (last, 0, 5) and not last.exists()  # the emptied segment is removed
    assert wal.segment_paths == [first] and wal.last_decree == 10
    wal.sync_append(written[10])
    wal.close()
    assert reopen(tmp_path)[1] == written[:11]


def test_oversized_mutation_is_refused(tmp_path, monkeypatch):
    import pegasus_node.storage.wal as wal_module

    monkeypatch.setattr(wal_module, "MAX_RECORD_BYTES", 100)
    wal = WriteAheadLog.open(tmp_path, fsync=False)
    with pytest.raises(Exception) as info:
        wal.append(record(1, size=200))
    assert info.value.code == ErrorCode.ERR_VALUE_TOO_LARGE
    assert wal.pending_count == 0
    wal.close()
