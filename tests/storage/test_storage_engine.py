"""StorageEngine: recovery, checkpoints, WAL garbage collection, fallbacks, learners' installs."""

from __future__ import annotations

import pytest

from pegasus_node.errors import ErrorCode
from pegasus_node.storage import (
    CheckpointDamaged,
    StorageEngine,
    StorageError,
    del_op,
    incr_op,
    put_op,
)
from pegasus_node.storage.checkpoint import list_checkpoints
from pegasus_node.storage.memtable import Memtable, Record
from pegasus_node.storage.wal import encode_frame
from .storage_testutil import T0, everything, flip_byte, mut, open_engine


def workload(decree: int):
    """A deterministic mix of writes, with TTLs that expire while the test runs."""
    writes = [put_op(b"h%d" % (decree % 5), b"s%04d" % decree, b"value-%d" % decree,
                     T0 + decree if decree % 3 == 0 else 0),
              incr_op(b"counters", b"c%d" % (decree % 4), decree)]
    if decree % 7 == 0:
        writes.append(del_op(b"h%d" % ((decree - 5) % 5), b"s%04d" % (decree - 5)))
    return mut(decree, *writes, at=decree / 2)


def log_and_apply(engine: StorageEngine, decrees) -> None:
    for d in decrees:
        m = workload(d)
        engine.wal.sync_append(m)
        engine.apply(m)


def recover(path, **options) -> StorageEngine:
    engine = open_engine(path, **options)
    for m in engine.recovered_log:
        engine.apply(m)
    return engine


SEGMENT = len(encode_frame(workload(1000))) * 8  # about eight mutations per segment


def test_fresh_directory(tmp_path):
    with open_engine(tmp_path / "new") as engine:
        assert engine.recovery.checkpoint_decree == 0 and engine.recovered_log == []
        assert engine.last_applied_decree == 0 and engine.latest_checkpoint_path is None
        stats = engine.stats()
        assert stats["record_count"] == 0 and stats["wal_bytes"] == 0 and stats["checkpoint_decree"] == 0
        assert engine.gc_wal() == []


def test_restart_replays_the_log(tmp_path):
    engine = open_engine(tmp_path)
    log_and_apply(engine, range(1, 41))
    state = everything(engine)
    engine.close()
    engine = open_engine(tmp_path)
    assert engine.last_applied_decree == 0  # the owner decides what to apply
    assert [m.decree for m in engine.recovered_log] == list(range(1, 41))
    assert engine.recovery.wal_mutations == 40 and engine.recovery.wal_records == 40
    for m in engine.recovered_log:
        engine.apply(m)
    assert everything(engine) == state
    engine.close()


def test_checkpoint_gc_and_restart(tmp_path):
    engine = open_engine(tmp_path, segment_max_bytes=SEGMENT)
    log_and_apply(engine, range(1, 61))
    snapshot = engine.checkpoint_snapshot()
    state_at_60 = everything(engine)
    log_and_apply(engine, range(61, 101))  # the owner goes on while the checkpoint is written
    path = engine.write_checkpoint(snapshot)
    assert path.name == "checkpoint.00000000000000000060.ckpt" and engine.checkpoint_decree == 60
    segments_before = engine.wal.segment_paths
    removed = engine.gc_wal()
    assert removed and removed == segments_before[: len(removed)]
    assert not any(p.exists() for p in removed)
    assert 50 < engine.wal.first_decree <= 61
    final_state = everything(engine)
    stats = engine.stats()
    engine.close()

    engine = open_engine(tmp_path, segment_max_bytes=SEGMENT)
    assert engine.recovery.checkpoint_decree == 60 and engine.last_applied_decree == 60
    assert everything(engine) == state_at_60  # exactly the snapshot, not what was applied later
    assert [m.decree for m in engine.recovered_log] == list(range(61, 101))
    for m in engine.recovered_log:
        engine.apply(m)
    assert everything(engine) == final_state
    assert engine.stats()["record_count"] == stats["record_count"]
    assert engine.stats()["wal_segments"] == stats["wal_segments"]
    engine.close()


def test_keeps_two_checkpoints_and_gc_respects_the_older_and_the_floor(tmp_path):
    engine = open_engine(tmp_path, segment_max_bytes=SEGMENT)
    for upto in (30, 60, 90):
        log_and_apply(engine, range(engine.last_applied_decree + 1, upto + 1))
        engine.checkpoint(floor=10)
        assert engine.wal.first_decree <= 10  # the floor keeps what a learner still needs
    assert [d for d, _ in list_checkpoints(tmp_path / "checkpoints")] == [90, 60]
    engine.gc_wal(floor=None)
    assert 52 < engine.wal.first_decree <= 61  # decrees above the older kept checkpoint (60) stay
    engine.close()


def damage_newest(tmp_path, how: str) -> None:
    _, newest = list_checkpoints(tmp_path / "checkpoints")[0]
    if how == "flip":
        flip_byte(newest, newest.stat().st_size // 2)
    elif how == "truncate":
        newest.write_bytes(newest.read_bytes()[:-3])
    else:
        newest.write_bytes(b"")


@pytest.mark.parametrize("how", ["flip", "truncate", "empty"])
def test_damaged_newest_checkpoint_falls_back(tmp_path, how):
    engine = open_engine(tmp_path, segment_max_bytes=SEGMENT)
    log_and_apply(engine, range(1, 41))
    engine.checkpoint()
    log_and_apply(engine, range(41, 81))
    engine.checkpoint()
    log_and_apply(engine, range(81, 91))
    state = everything(engine)
    engine.close()
    damage_newest(tmp_path, how)

    engine = recover(tmp_path, segment_max_bytes=SEGMENT)
    report = engine.recovery
    assert report.checkpoint_decree == 40
    [warning] = report.fallbacks
    assert "checkpoint.00000000000000000080.ckpt is damaged" in warning and "falling back" in warning
    assert "damaged" in report.summary()
    assert everything(engine) == state
    aside = tmp_path / "checkpoints" / "checkpoint.00000000000000000080.ckpt.damaged"
    assert aside.exists()
    engine.close()
    engine = recover(tmp_path, segment_max_bytes=SEGMENT)  # still reported, still recoverable
    assert "found damaged by an earlier open" in engine.recovery.fallbacks[0]
    assert everything(engine) == state
    engine.checkpoint()  # kept: 90 and 40; the damaged 80 is newer than 40, so it stays
    assert aside.exists()
    log_and_apply(engine, [91])
    engine.checkpoint()  # kept: 91 and 90; nothing needs the damaged one any more
    assert not aside.exists()
    engine.close()


def test_damaged_checkpoint_without_the_log_to_cover_it_is_an_error(tmp_path):
    engine = open_engine(tmp_path, segment_max_bytes=SEGMENT)
    log_and_apply(engine, range(1, 61))
    engine.checkpoint()  # the only checkpoint: the log below it is removed
    log_and_apply(engine, range(61, 66))
    engine.close()
    damage_newest(tmp_path, "flip")
    with pytest.raises(StorageError) as info:
        open_engine(tmp_path, segment_max_bytes=SEGMENT)
    message = str(info.value)
    assert info.value.code == ErrorCode.ERR_DISK_IO
    assert "damaged" in message and "decree 60" in message and "restore" in message
    # The failed open released the directory, and a second open refuses just the same: the damaged file was
    # set aside, not forgotten.
    with pytest.raises(StorageError) as info:
        open_engine(tmp_path, segment_max_bytes=SEGMENT)
    assert "found damaged by an earlier open" in str(info.value)
    # Once the operator removes the damaged checkpoint, the engine opens and reports the gap honestly.
    (tmp_path / "checkpoints" / "checkpoint.00000000000000000060.ckpt.damaged").unlink()
    with open_engine(tmp_path, segment_max_bytes=SEGMENT) as engine:
        assert engine.recovery.gap is not None and engine.recovery.gap[0] == 1


def test_log_gap_is_reported(tmp_path):
    engine = open_engine(tmp_path)
    log_and_apply(engine, range(1, 4))
    for d in (7, 8):  # e.g. a learner that logged new prepares before catching up
        engine.wal.sync_append(workload(d))
    engine.close()
    with open_engine(tmp_path) as engine:
        assert engine.recovery.gap is None  # the log starts right above the (missing) checkpoint
    engine = open_engine(tmp_path)
    for m in engine.recovered_log[:3]:
        engine.apply(m)
    engine.checkpoint()
    engine.close()
    with open_engine(tmp_path) as engine:
        assert engine.recovery.gap == (4, 6) and "4..6 are missing" in engine.recovery.summary()
        assert [m.decree for m in engine.recovered_log] == [7, 8]


def test_implicit_truncation_on_recovery(tmp_path):
    engine = open_engine(tmp_path)
    for d in range(1, 6):
        engine.wal.sync_append(mut(d, put_op(b"h", b"k%d" % d, b"old")))
    # A new primary (ballot 2) re-proposes decree 3 with different content, then 4.
    engine.wal.sync_append(mut(3, put_op(b"h", b"k3", b"new"), ballot=2))
    engine.wal.sync_append(mut(4, put_op(b"h", b"k4", b"new"), ballot=2))
    engine.close()
    engine = recover(tmp_path)
    assert [(m.decree, m.ballot) for m in engine.recovered_log] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    assert engine.multi_get(b"h", now=T0)[0] == [(b"k1", b"old"), (b"k2", b"old"), (b"k3", b"new"),
                                                 (b"k4", b"new")]
    engine.close()


def test_expiry_clock_survives_a_checkpoint(tmp_path):
    engine = open_engine(tmp_path)
    engine.apply(mut(1, put_op(b"h", b"k", b"v", T0 + 10), at=0))
    engine.apply(mut(2, put_op(b"h", b"other", b"v"), at=20))  # the apply clock passes the expiry
    engine.checkpoint()
    engine.close()
    engine = open_engine(tmp_path)
    # A later mutation stamped *before* the expiry (a primary with a slower clock) must see the record as
    # gone on every replica, whether it restarted from a checkpoint or not.
    [result] = engine.apply(mut(3, incr_op(b"h", b"k", 1), at=5))
    assert result == {"value": 1}
    engine.close()


def test_directory_is_locked_while_open(tmp_path):
    engine = open_engine(tmp_path)
    with pytest.raises(StorageError) as info:
        open_engine(tmp_path)
    assert "in use" in str(info.value)
    engine.close()
    open_engine(tmp_path).close()


def test_install_checkpoint_for_a_learner(tmp_path):
    primary = open_engine(tmp_path / "primary")
    log_and_apply(primary, range(1, 51))
    primary.checkpoint()
    source = primary.latest_checkpoint_path
    learner = open_engine(tmp_path / "learner")
    log_and_apply(learner, range(1, 6))
    learner.checkpoint()
    assert learner.install_checkpoint(source) == 50
    assert learner.last_applied_decree == 50 and everything(learner) == everything(primary)
    log_and_apply(primary, [51])
    log_and_apply(learner, [51])
    learner.close()
    learner = recover(tmp_path / "learner")
    assert learner.recovery.checkpoint_decree == 50 and everything(learner) == everything(primary)

    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(source.read_bytes()[:-1])
    with pytest.raises(CheckpointDamaged):
        learner.install_checkpoint(damaged)
    assert learner.last_applied_decree == 51
    learner.close()
    primary.close()


def test_stats(tmp_path):
    with open_engine(tmp_path) as engine:
        log_and_apply(engine, range(1, 11))
        engine.checkpoint()
        stats = engine.stats()
        assert stats["last_applied_decree"] == 10 and stats["checkpoint_decree"] == 10
        assert stats["checkpoint_count"] == 1 and stats["wal_last_decree"] == 10
        assert stats["wal_bytes"] == engine.wal.total_bytes > 0
        assert stats["record_count"] == len(engine.checkpoint_snapshot().items)


def test_checkpoint_round_trip_with_many_chunks(tmp_path):
    with open_engine(tmp_path) as engine:
        small = [put_op(b"h%d" % (i % 97), b"s%05d" % i, b"x%d" % i, T0 + 10**6 if i % 2 else 0)
                 for i in range(9000)]
        big = [put_op(b"big", b"%d" % i, bytes([i]) * (3 << 20)) for i in range(3)]
        engine.apply(mut(1, *small, *big))
        state = everything(engine)
        engine.checkpoint()
    with open_engine(tmp_path) as engine:
        assert engine.recovery.checkpoint_decree == 1 and everything(engine) == state
        assert engine.get_record(b"h1", b"s00001", now=T0).expire_ts == T0 + 10**6


def test_storage_does_not_import_twisted():
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, pegasus_node.storage; print(sorted(m for m in sys.modules if m.startswith('twisted')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


def test_a_memtable_snapshot_is_ordered_and_unaffected_by_later_changes():
    table = Memtable()
    for i in range(5000):  # enough keys for several of SortedList's internal sublists
        table.put(b"k%05d" % ((i * 7919) % 5000), Record(b"v%d" % i, 0, 1))
    before = table.items()
    snapshot = table.snapshot()
    table.put(b"k00001", Record(b"changed", 0, 2))
    table.put(b"new", Record(b"n", 0, 2))
    table.delete(b"k00002")
    assert len(snapshot) == 5000 and list(snapshot) == before
    assert [key for key, _ in before] == sorted(key for key, _ in before)
