"""The replica server's shared log (Pegasus's "slog"): one fsync makes every hosted replica's WAL writes durable.

Each replica keeps its own WAL (its private log, which recovery, learners and GC read). A server that hosts
many replicas would otherwise fsync each of their WALs for every batch, and on one disk fsyncs of several
files cost about one fsync each (8 files took 5x as long as one here). So the server's log writer
(replica/log_writer.py) writes each replica's batch to its WAL *without* an fsync, appends a redo record of
that write (which WAL, which segment file, at which offset, which bytes) to this shared log, and fsyncs only
the shared log. A write may be acknowledged once its redo record is durable.

Recovery (``recover``), before any replica opens: the redo records are applied again, in order, to the WAL
files they describe (a crash may have lost WAL pages that were never fsynced). Each WAL is then cut right
after its last redo record: anything beyond it was never durable, so never acknowledged. Everything is
fsynced, and the shared log starts again empty.

GC: the shared log only has to hold what the WALs have not fsynced themselves. When its active segment is
large, the writer starts a new segment, fsyncs every open WAL and removes the older segments. A WAL also
fsyncs itself when it closes.

Each segment is zero-filled ahead of its records, 1 MiB at a time, within the fsync of the append that needs the
space. An fdatasync of writes into blocks the file already has commits no new file size to the filesystem's
journal, which here made each fsync about a third cheaper. Recovery reads the zeros after a segment's last
record as its end.

Each append (one log cycle) is one frame, as in the WAL (``[u32 length][u32 CRC32C][payload]``). Its payload
is a msgpack list of redo records ``[app_id, partition_index, wal_incarnation, segment_file_name, offset,
bytes]``; a payload that is one such record alone (what earlier versions wrote, a frame per record) is read
too. The incarnation keeps a replica directory that was deleted and created again from receiving its old
life's writes. One frame per append makes a torn append, whatever pages of it a power loss kept, the last
frame with nothing valid after it: recovery cuts it as a torn tail. With a frame per record, intact records
after a lost page of the same (never acknowledged) append would look like corruption, and the server would
refuse to start.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import msgpack

from .errors import StorageError
from .fsutil import fsync_dir, lock_directory, write_at
from .wal import frame, parse_records, read_incarnation, segment_seq

DEFAULT_SHARED_LOG_ROTATE_BYTES = 32 << 20
_SEGMENT_NAME = re.compile(r"slog\.(\d{8})\.log")


# Each segment is zero-filled ahead of its records, this much at a time (see SharedLog.append). Recovery reads
# the zeros after the last record as the end of the segment, not as a torn tail.
ZERO_FILL_BYTES = 1 << 20
_ZEROS = bytes(ZERO_FILL_BYTES)


class RedoRecord(NamedTuple):
    gpid: tuple[int, int]
    incarnation: str
    segment: str  # the WAL segment file name
    offset: int
    data: bytes


def redo_entry(gpid: tuple[int, int], incarnation: str, segment: str, offset: int, data: bytes) -> list:
    """One redo record, as ``SharedLog.append`` takes it: ``data`` was written at ``offset`` of ``segment``."""
    return [gpid[0], gpid[1], incarnation, segment, offset, data]


# A frame's length is a u32; an append is one frame, which may hold many replicas' batches.
_MAX_APPEND_BYTES = (1 << 32) - 1


def _redo_record(fields) -> RedoRecord | None:
    if not (isinstance(fields, list) and len(fields) == 6):
        return None
    app_id, pidx, incarnation, segment, offset, data = fields
    if not (type(app_id) is int and type(pidx) is int and isinstance(incarnation, str) and type(offset) is int
            and offset >= 0 and isinstance(data, bytes) and isinstance(segment, str)
            and segment_seq(segment) is not None):
        return None
    return RedoRecord((app_id, pidx), incarnation, segment, offset, data)


def _decode_append(payload: bytes) -> list[RedoRecord] | str:
    """The redo records of one append, or why the payload holds none."""
    try:
        fields = msgpack.unpackb(payload, raw=False)
    except Exception as exc:  # the CRC matched, so this is a writer bug, still a bad record
        return f"the record does not decode as redo records ({exc})"
    single = _redo_record(fields)  # an earlier version's frame: one record
    if single is not None:
        return [single]
    records = [_redo_record(entry) for entry in fields] if isinstance(fields, list) and fields else [None]
    if None in records:
        return "the record is not a list of redo records"
    return records


@dataclass
class RedoReport:
    records: int = 0
    replicas: int = 0  # replicas whose WAL the records were applied to
    skipped_replicas: list[str] = field(default_factory=list)  # gone, or a new incarnation
    bytes_cut: int = 0  # written to WALs after their last durable redo record
    torn_tail: tuple[str, int] | None = None  # (shared log segment, bytes cut)

    def summary(self) -> str:
        parts = [f"{self.records} redo records applied to {self.replicas} replica WALs"]
        if self.skipped_replicas:
            parts.append(f"skipped (removed or recreated): {', '.join(self.skipped_replicas)}")
        if self.bytes_cut:
            parts.append(f"{self.bytes_cut} never-durable WAL bytes cut")
        if self.torn_tail:
            parts.append(f"torn shared-log tail cut: {self.torn_tail[1]} bytes of {self.torn_tail[0]}")
        return "; ".join(parts)


class SharedLog:
    """Use ``SharedLog.recover``. Appends come from one thread at a time (the log writer's cycle)."""

    def __init__(self, directory: Path, lock_fd: int, next_seq: int, *, fsync: bool, rotate_bytes: int) -> None:
        self.directory = directory
        self._lock_fd: int | None = lock_fd
        self.rotate_bytes = rotate_bytes
        self._fsync = fsync
        self._next_seq = next_seq
        self._fd: int | None = None
        self._active_seq = 0
        self.active_bytes = 0  # where the next record goes; the zero fill beyond it is not counted
        self._zero_filled_end = 0  # the active segment's size: records up to active_bytes, then zeros

    @classmethod
    def recover(cls, directory: str | os.PathLike, wal_directory_of: Callable[[tuple[int, int]], Path], *,
                fsync: bool = True, rotate_bytes: int = DEFAULT_SHARED_LOG_ROTATE_BYTES,
                ) -> tuple["SharedLog", RedoReport]:
        """Apply the shared log to the replicas' WALs (``wal_directory_of(gpid)``) and start it empty.

        Raises StorageError when the shared log is corrupt (not at its tail) or a WAL cannot be repaired:
        the server must not start then, since replicas would open without writes it acknowledged."""
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock_fd = lock_directory(directory, "replica server")
        except OSError as exc:
            raise StorageError(f"cannot open the shared log directory {directory}: {exc.strerror or exc}") from exc
        try:
            return cls._recover_locked(directory, lock_fd, wal_directory_of, fsync, rotate_bytes)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _recover_locked(cls, directory: Path, lock_fd: int, wal_directory_of, fsync: bool,
                        rotate_bytes: int) -> tuple["SharedLog", RedoReport]:
        try:
            found = sorted((int(m.group(1)), directory / m.group(0))
                           for m in map(_SEGMENT_NAME.fullmatch, os.listdir(directory)) if m)
        except OSError as exc:
            raise StorageError(f"cannot list the shared log directory {directory}: {exc.strerror or exc}") from exc
        report = RedoReport()
        records: list[RedoRecord] = []
        for index, (_seq, path) in enumerate(found):
            try:
                buf = path.read_bytes()
            except OSError as exc:
                raise StorageError(f"cannot read shared log segment {path}: {exc.strerror}") from exc
            appends, valid = parse_records(path, buf, index == len(found) - 1, _decode_append,
                                           zero_fill_is_end=True, max_record_bytes=_MAX_APPEND_BYTES)
            torn = len(buf.rstrip(b"\0")) - valid  # the zero fill after it is not part of the torn tail
            if torn > 0:
                report.torn_tail = (path.name, torn)
            records.extend(record for append in appends for record in append)
        report.records = len(records)
        _redo(records, wal_directory_of, report, fsync)
        # Everything the old segments held is now durable in the WALs themselves.
        try:
            for _seq, path in found:
                path.unlink()
            if found and fsync:
                fsync_dir(directory)
        except OSError as exc:
            raise StorageError(f"cannot remove replayed shared log segments in {directory}: "
                               f"{exc.strerror or exc}") from exc
        next_seq = found[-1][0] + 1 if found else 1
        return cls(directory, lock_fd, next_seq, fsync=fsync, rotate_bytes=rotate_bytes), report

    # ----- appends (on the log writer's thread) -----

    def append(self, entries: list[list]) -> None:
        """Write redo records (``redo_entry``) as one frame and fsync them (blocking). Raises StorageError; what
        reached the disk is then unknown, and the caller must stop acknowledging writes."""
        data = frame(msgpack.packb(entries, use_bin_type=True))
        try:
            if self._fd is None:
                self._open_segment()
            start = self.active_bytes
            try:
                write_at(self._fd, data, start)
                end = start + len(data)
                if self._fsync and end > self._zero_filled_end:
                    self._zero_fill_after(end)
                if self._fsync:
                    os.fdatasync(self._fd)
            except OSError:
                self._cut_back(start)
                raise
            self.active_bytes += len(data)
        except OSError as exc:
            raise StorageError(f"writing the shared log in {self.directory} failed: {exc.strerror or exc}; "
                               "free disk space, then restart the replica server") from exc

    def _zero_fill_after(self, end: int) -> None:
        """Zero-fill ahead, within this append's fsync: the appends after it overwrite blocks the file already
        has, so their fdatasync need not commit a new file size to the journal (measured here: about a third
        less time and CPU per fsync, and half the context switches). Only a speed-up: on a disk too full for
        the fill, the records still go in, and the next append tries again."""
        try:
            write_at(self._fd, _ZEROS, end)
        except OSError:
            return
        self._zero_filled_end = end + ZERO_FILL_BYTES

    def _cut_back(self, size: int) -> None:
        """After a failed append: cut what it may have left, so the segment ends with the last durable record.
        Best effort. If the disk refuses this too, pages of the failed append may still reach it later, but
        an append is one frame and nothing is appended after a failure, so recovery finds at most a torn last
        frame and cuts it."""
        try:
            os.ftruncate(self._fd, size)
            self._zero_filled_end = size
            if self._fsync:
                os.fdatasync(self._fd)
        except OSError:
            pass

    def rotate(self) -> int:
        """Start a new segment for the next append; returns the sequence number of the segment closed."""
        closed = self._active_seq
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        return closed

    def remove_upto(self, seq: int) -> None:
        """Remove segments up to ``seq``, once every WAL write they redo is durable in the WAL itself."""
        removed = False
        for name in os.listdir(self.directory):
            match = _SEGMENT_NAME.fullmatch(name)
            if match and int(match.group(1)) <= seq:
                (self.directory / name).unlink(missing_ok=True)
                removed = True
        if removed and self._fsync:
            fsync_dir(self.directory)

    def _open_segment(self) -> None:
        self._active_seq, self._next_seq = self._next_seq, self._next_seq + 1
        path = self.directory / f"slog.{self._active_seq:08d}.log"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.active_bytes = 0
        self._zero_filled_end = 0
        if self._fsync:
            fsync_dir(self.directory)

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._lock_fd = None


def _redo(records: list[RedoRecord], wal_directory_of: Callable[[tuple[int, int]], Path], report: RedoReport,
          fsync: bool) -> None:
    by_gpid: dict[tuple[int, int], list[RedoRecord]] = {}
    for record in records:
        by_gpid.setdefault(record.gpid, []).append(record)
    for gpid, mine in by_gpid.items():
        wal_dir = wal_directory_of(gpid)
        # Only the newest incarnation's records matter: an older one's WAL was deleted with its directory.
        if read_incarnation(wal_dir) != mine[-1].incarnation:
            report.skipped_replicas.append(f"{gpid[0]}.{gpid[1]}")
            continue
        try:
            report.bytes_cut += _redo_one(wal_dir, [r for r in mine if r.incarnation == mine[-1].incarnation], fsync)
        except OSError as exc:
            raise StorageError(f"cannot repair the WAL in {wal_dir} from the shared log: {exc.strerror or exc}; "
                               "free disk space or fix the directory's permissions, then restart") from exc
        report.replicas += 1


def _redo_one(wal_dir: Path, records: list[RedoRecord], fsync: bool) -> int:
    """Write the records into the WAL's segment files, then cut after the last one. Returns bytes cut."""
    existing = {seq: name for name in os.listdir(wal_dir) if (seq := segment_seq(name)) is not None}
    oldest = min(existing, default=None)
    touched: set[str] = set()
    for record in records:
        seq = segment_seq(record.segment)
        if oldest is not None and seq < oldest:
            continue  # garbage-collected after a checkpoint covered it
        fd = os.open(wal_dir / record.segment, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            write_at(fd, record.data, record.offset)
        finally:
            os.close(fd)
        touched.add(record.segment)
    last = records[-1]
    last_seq = segment_seq(last.segment)
    cut = 0
    if oldest is None or last_seq >= oldest:
        end = last.offset + len(last.data)
        path = wal_dir / last.segment
        cut += max(0, path.stat().st_size - end)
        os.truncate(path, end)
        touched.add(last.segment)
        for seq, name in existing.items():
            if seq > last_seq:  # started after the last durable write: nothing in it was acknowledged
                cut += (wal_dir / name).stat().st_size
                (wal_dir / name).unlink()
    if fsync:
        for name in touched:
            fd = os.open(wal_dir / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(wal_dir)
    return cut
