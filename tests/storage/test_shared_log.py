"""The replica server's shared log: WAL writes that only it made durable come back after a power loss.

A crash of the process keeps the page cache, so `kill -9` tests cannot lose unsynced WAL bytes. These tests
lose them on purpose (truncating or zeroing WAL files after the writes), which is what a power loss does.
"""

from __future__ import annotations

import os
import shutil

import msgpack
import pytest

from pegasus_node.storage import StorageError, WalCorruptionError
from pegasus_node.storage.shared_log import ZERO_FILL_BYTES, SharedLog, redo_entry
from pegasus_node.storage.wal import WriteAheadLog, frame

from .storage_testutil import mut

GPID = (1, 0)


def put(decree: int) -> dict:
    return {"op": "put", "hash_key": b"h", "sort_key": b"s%d" % decree, "value": b"v%d" % decree}


def wal_dir(tmp_path, gpid=GPID):
    return tmp_path / "replica" / f"{gpid[0]}.{gpid[1]}" / "wal"


def recover(tmp_path, **options):
    return SharedLog.recover(tmp_path / "slog", lambda gpid: wal_dir(tmp_path, gpid), **options)


def write_through(tmp_path, shared: SharedLog, decrees, gpid=GPID, with_redo=True) -> WriteAheadLog:
    """What the server's log writer does: the WAL written without fsync, the redo record fsynced."""
    wal = WriteAheadLog.open(wal_dir(tmp_path, gpid), fsync=False, segment_max_bytes=400)
    for decree in decrees:
        wal.append(mut(decree, put(decree)))
        batch = wal.take_batch()
        segment = wal.write_batch(batch, sync=False)
        if with_redo:
            shared.append([redo_entry(gpid, wal.incarnation, segment.path.name, segment.size - len(batch.data),
                                      batch.data)])
    return wal


def decrees_in(tmp_path, gpid=GPID) -> list[int]:
    wal = WriteAheadLog.open(wal_dir(tmp_path, gpid), fsync=False)
    try:
        return [m.decree for m in wal.take_recovered()]
    finally:
        wal.close()


def lose_unsynced_bytes(tmp_path, gpid=GPID) -> None:
    """A power loss before any WAL fsync: every segment keeps only its first few bytes, or none."""
    for index, path in enumerate(sorted(wal_dir(tmp_path, gpid).glob("wal.*.log"))):
        if index % 2:
            path.unlink()
        else:
            os.truncate(path, 7)


def test_redo_brings_back_wal_writes_lost_with_the_page_cache(tmp_path):
    shared, _ = recover(tmp_path)
    write_through(tmp_path, shared, range(1, 31)).close()
    shared.close()
    assert len(list(wal_dir(tmp_path).glob("wal.*.log"))) > 2  # several segments, some of them lost below
    lose_unsynced_bytes(tmp_path)

    shared, report = recover(tmp_path)
    shared.close()
    assert decrees_in(tmp_path) == list(range(1, 31))
    assert report.records == 30 and report.replicas == 1
    assert list((tmp_path / "slog").glob("slog.*.log")) == []  # its content lives in the WAL now


def test_wal_bytes_without_a_durable_redo_record_are_cut(tmp_path):
    shared, _ = recover(tmp_path)
    wal = write_through(tmp_path, shared, range(1, 6))
    # written to the WAL, but the process died before the shared log's fsync: never acknowledged
    wal.append(mut(6, put(6)))
    wal.write_batch(wal.take_batch(), sync=False)
    wal.close()
    shared.close()

    shared, report = recover(tmp_path)
    shared.close()
    assert decrees_in(tmp_path) == [1, 2, 3, 4, 5]
    assert report.bytes_cut > 0
    assert "never-durable WAL bytes cut" in report.summary()


def test_records_of_removed_or_recreated_replicas_are_skipped(tmp_path):
    shared, _ = recover(tmp_path)
    write_through(tmp_path, shared, range(1, 4), gpid=(1, 0)).close()
    write_through(tmp_path, shared, range(1, 4), gpid=(1, 1)).close()
    write_through(tmp_path, shared, range(1, 4), gpid=(1, 2)).close()
    shared.close()
    shutil.rmtree(wal_dir(tmp_path, (1, 0)).parent)  # the replica was removed
    shutil.rmtree(wal_dir(tmp_path, (1, 1)).parent)  # ... and assigned here again: a new, empty WAL
    WriteAheadLog.open(wal_dir(tmp_path, (1, 1)), fsync=False).close()

    shared, report = recover(tmp_path)
    shared.close()
    assert sorted(report.skipped_replicas) == ["1.0", "1.1"]
    assert not wal_dir(tmp_path, (1, 0)).exists()
    assert decrees_in(tmp_path, (1, 1)) == []
    assert decrees_in(tmp_path, (1, 2)) == [1, 2, 3]


def test_a_torn_shared_log_tail_is_cut(tmp_path):
    shared, _ = recover(tmp_path)
    write_through(tmp_path, shared, range(1, 4)).close()
    records_end = shared.active_bytes  # the zero fill starts here
    shared.close()
    [segment] = (tmp_path / "slog").glob("slog.*.log")
    with open(segment, "r+b") as handle:  # a record cut short, where the next append went (the zero fill)
        handle.seek(records_end)
        handle.write(b"\x00\x00\x01\x00torn")

    shared, report = recover(tmp_path)
    shared.close()
    assert report.torn_tail == (segment.name, 8)
    assert decrees_in(tmp_path) == [1, 2, 3]


def test_a_corrupt_record_before_the_tail_stops_recovery(tmp_path):
    shared, _ = recover(tmp_path)
    write_through(tmp_path, shared, range(1, 4)).close()
    shared.close()
    [segment] = (tmp_path / "slog").glob("slog.*.log")
    data = bytearray(segment.read_bytes())
    data[20] ^= 0xFF  # inside the first record; valid records follow
    segment.write_bytes(bytes(data))

    with pytest.raises(WalCorruptionError) as info:
        recover(tmp_path)
    assert str(segment) in info.value.message
    assert segment.exists()  # nothing was thrown away


def test_two_servers_cannot_share_a_data_directory(tmp_path):
    shared, _ = recover(tmp_path)
    try:
        with pytest.raises(StorageError, match="in use by another replica server"):
            recover(tmp_path)
    finally:
        shared.close()


def test_rotation_and_removal_keep_what_is_not_yet_in_a_synced_wal(tmp_path):
    shared, _ = recover(tmp_path)
    wal = write_through(tmp_path, shared, range(1, 4))
    closed = shared.rotate()
    wal.close()  # the writer fsyncs the open WALs before removing rotated segments; closing fsyncs too
    shared.remove_upto(closed)
    write_through(tmp_path, shared, range(4, 6)).close()
    shared.close()
    assert len(list((tmp_path / "slog").glob("slog.*.log"))) == 1

    # only the last two writes are in the shared log now; the WAL's own fsync keeps the first three
    shared, report = recover(tmp_path)
    shared.close()
    assert report.records == 2
    assert decrees_in(tmp_path) == [1, 2, 3, 4, 5]


def test_a_failed_fsync_leaves_no_bytes_of_its_append_behind(tmp_path, monkeypatch):
    """Part of a failed append's pages may still reach the disk later, after others were lost: a hole before
    intact records would stop recovery as corruption. The failed append is cut off at once instead."""
    shared, _ = recover(tmp_path)
    wal = write_through(tmp_path, shared, range(1, 6))
    segment = next((tmp_path / "slog").glob("slog.*.log"))
    durable_end = shared.active_bytes
    real_fdatasync = os.fdatasync
    failures = []

    def failing_fdatasync(fd):
        if not failures:
            failures.append(fd)
            raise OSError(5, "Input/output error")
        return real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", failing_fdatasync)
    wal.append(mut(6, put(6)))
    batch = wal.take_batch()
    written = wal.write_batch(batch, sync=False)
    with pytest.raises(StorageError, match="Input/output error"):
        shared.append([redo_entry(GPID, wal.incarnation, written.path.name, written.size - len(batch.data),
                                  batch.data)])
    monkeypatch.setattr(os, "fdatasync", real_fdatasync)
    assert failures and segment.stat().st_size == durable_end  # its zero fill goes with it
    wal.close()
    shared.close()
    lose_unsynced_bytes(tmp_path)

    shared, report = recover(tmp_path)
    shared.close()
    assert report.records == 5 and report.torn_tail is None
    assert decrees_in(tmp_path) == [1, 2, 3, 4, 5]  # decree 6 was never acknowledged


def test_segments_are_zero_filled_ahead_and_the_fill_is_not_a_torn_tail(tmp_path):
    shared, _ = recover(tmp_path, rotate_bytes=1 << 20)
    write_through(tmp_path, shared, range(1, 4)).close()
    [segment] = (tmp_path / "slog").glob("slog.*.log")
    assert shared.active_bytes < segment.stat().st_size <= shared.active_bytes + ZERO_FILL_BYTES
    assert not any(segment.read_bytes()[shared.active_bytes:])  # the fill
    # Records past the first fill: the fill is extended within the append that needs it.
    big = b"x" * (ZERO_FILL_BYTES // 2)
    for index in range(3):
        shared.append([redo_entry((9, 9), "gone", f"wal.{1:08d}.{1:020d}.log", index * len(big), big)])
    assert shared.active_bytes > ZERO_FILL_BYTES
    assert shared.active_bytes < segment.stat().st_size <= shared.active_bytes + ZERO_FILL_BYTES
    shared.rotate()  # a closed segment keeps its fill: recovery must accept it before the last segment too
    write_through(tmp_path, shared, range(4, 6)).close()
    shared.close()
    assert len(list((tmp_path / "slog").glob("slog.*.log"))) == 2
    lose_unsynced_bytes(tmp_path)

    shared, report = recover(tmp_path)
    shared.close()
    assert report.torn_tail is None
    assert report.records == 8
    assert decrees_in(tmp_path) == [1, 2, 3, 4, 5]


def test_a_torn_record_in_the_zero_fill_of_an_earlier_segment_is_corruption(tmp_path):
    # Only the last segment may end torn: an earlier one was complete when the next one started.
    shared, _ = recover(tmp_path)
    write_through(tmp_path, shared, range(1, 3)).close()
    first_end = shared.active_bytes
    shared.rotate()
    write_through(tmp_path, shared, range(3, 5)).close()
    shared.close()
    first = sorted((tmp_path / "slog").glob("slog.*.log"))[0]
    with open(first, "r+b") as handle:
        handle.seek(first_end)
        handle.write(b"\x00\x00\x01\x00torn")

    with pytest.raises(WalCorruptionError):
        recover(tmp_path)


def test_a_disk_too_full_for_the_zero_fill_still_takes_the_records(tmp_path, monkeypatch):
    real_pwrite = os.pwrite

    def pwrite_without_room_for_the_fill(fd, data, offset):
        if len(data) == ZERO_FILL_BYTES and not any(bytes(data[:4096])):
            raise OSError(28, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite_without_room_for_the_fill)
    shared, _ = recover(tmp_path)
    write_through(tmp_path, shared, range(1, 6)).close()
    [segment] = (tmp_path / "slog").glob("slog.*.log")
    assert segment.stat().st_size == shared.active_bytes  # no fill, every record
    shared.close()
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    lose_unsynced_bytes(tmp_path)

    shared, report = recover(tmp_path)
    shared.close()
    assert report.records == 5 and report.torn_tail is None
    assert decrees_in(tmp_path) == [1, 2, 3, 4, 5]


def write_unsynced(tmp_path, decrees, gpid=GPID) -> list:
    """WAL writes without fsync; returns their redo entries (for one shared-log append)."""
    wal = WriteAheadLog.open(wal_dir(tmp_path, gpid), fsync=False, segment_max_bytes=1 << 20)
    entries = []
    for decree in decrees:
        wal.append(mut(decree, put(decree)))
        batch = wal.take_batch()
        segment = wal.write_batch(batch, sync=False)
        entries.append(redo_entry(gpid, wal.incarnation, segment.path.name, segment.size - len(batch.data),
                                  batch.data))
    wal.close()
    return entries


def test_an_append_torn_anywhere_is_a_torn_tail_not_corruption(tmp_path):
    """A power loss during the last append may keep any of its pages: here its first bytes are lost and its
    later records survive. It was never acknowledged, so recovery cuts it whole, and starts."""
    shared, _ = recover(tmp_path)
    shared.append(write_unsynced(tmp_path, range(1, 4)))
    durable_end = shared.active_bytes
    shared.append(write_unsynced(tmp_path, range(4, 12)))  # one append of eight records, several KB
    shared.close()
    [segment] = (tmp_path / "slog").glob("slog.*.log")
    with open(segment, "r+b") as handle:  # its first page never reached the disk: zeros (the fill) remain
        handle.seek(durable_end)
        handle.write(bytes(64))

    shared, report = recover(tmp_path)
    shared.close()
    assert report.records == 3 and report.torn_tail is not None
    assert decrees_in(tmp_path) == [1, 2, 3]


def test_frames_of_one_record_each_from_earlier_versions_are_replayed(tmp_path):
    (tmp_path / "slog").mkdir()
    old_format = b"".join(frame(msgpack.packb(entry, use_bin_type=True))
                          for entry in write_unsynced(tmp_path, range(1, 4)))
    (tmp_path / "slog" / "slog.00000001.log").write_bytes(old_format)
    lose_unsynced_bytes(tmp_path)

    shared, report = recover(tmp_path)
    shared.close()
    assert report.records == 3 and report.torn_tail is None
    assert decrees_in(tmp_path) == [1, 2, 3]
