"""The write-ahead log: append-only segment files of framed mutations, group-committed.

Record frame: ``[u32 BE payload length][u32 BE CRC32C(payload)][payload = Mutation.encode()]``.

Segments are named ``wal.<seq:08d>.<first_decree:020d>.log``. The sequence number comes first because log
order is not decree order: a new primary may re-propose decrees lower than the ones a segment started
with, and replay must read the records in the order they were written.

Group commit is split so that the fsync can run on a worker thread while new appends pile up on the
owner's thread: ``append`` only encodes into a pending buffer, ``take_batch`` swaps that buffer out, and
``write_batch`` writes and fsyncs it once (blocking). Nothing here imports Twisted.

Recovery (``open``) reads every segment. A bad record at the end of the last segment, with no valid record
anywhere after it, is a torn write from a crash: it is cut off and reported as ``TornTail``. Any other bad
record raises ``WalCorruptionError``; it is never skipped.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple

from crc32c import crc32c
from sortedcontainers import SortedDict

from pegasus_node.errors import ErrorCode, PegasusError

from .errors import StorageError, WalCorruptionError
from .fsutil import fsync_dir, write_at
from .mutation import Mutation

FRAME_HEADER = struct.Struct(">II")
MAX_RECORD_BYTES = 256 << 20  # a length above this in a frame header is garbage, not a record
DEFAULT_SEGMENT_MAX_BYTES = 64 << 20
_SEGMENT_NAME = re.compile(r"wal\.(\d{8})\.(\d{20})\.log")
INCARNATION_FILE = "INCARNATION"


def segment_name(seq: int, first_decree: int) -> str:
    return f"wal.{seq:08d}.{first_decree:020d}.log"


def segment_seq(name: str) -> int | None:
    match = _SEGMENT_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def read_incarnation(directory: Path) -> str | None:
    try:
        return (directory / INCARNATION_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def _ensure_incarnation(directory: Path, fsync: bool) -> str:
    """A random name for this log's life: a log deleted and created again in the same place gets a new one,
    so the server's shared log never replays an old life's writes into it (storage/shared_log.py)."""
    existing = read_incarnation(directory)
    if existing:
        return existing
    token = secrets.token_hex(8)
    tmp = directory / (INCARNATION_FILE + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(token)
        handle.flush()
        if fsync:
            os.fsync(handle.fileno())
    os.replace(tmp, directory / INCARNATION_FILE)
    if fsync:
        fsync_dir(directory)
    return token


def encode_frame(mutation: Mutation) -> bytes:
    payload = mutation.encode()
    if len(payload) > MAX_RECORD_BYTES:
        # Recovery would take a longer record for garbage, so it must never be written.
        raise PegasusError(ErrorCode.ERR_VALUE_TOO_LARGE,
                           f"mutation {mutation.decree} encodes to {len(payload)} bytes; "
                           f"the WAL record limit is {MAX_RECORD_BYTES}")
    return frame(payload)


class TornTail(NamedTuple):
    segment: Path
    offset: int  # where the cut was made (the file's new length)
    bytes_cut: int


@dataclass(frozen=True, slots=True)
class WalBatch:
    """Mutations taken from the pending buffer, with their frames concatenated, ready for one write+fsync."""

    mutations: tuple[Mutation, ...]
    data: bytes
    first_decree: int
    last_decree: int


@dataclass(slots=True)
class _Segment:
    path: Path
    seq: int
    size: int = 0
    min_decree: int | None = None
    max_decree: int | None = None

    def note(self, mutation: Mutation) -> None:
        d = mutation.decree
        self.min_decree = d if self.min_decree is None else min(self.min_decree, d)
        self.max_decree = d if self.max_decree is None else max(self.max_decree, d)


def resolve_log(records: Iterable[Mutation]) -> list[Mutation]:
    """Replay semantics: the mutations a log really holds, ordered by decree.

    A record (ballot b, decree d) truncates every earlier record with decree >= d and a lower ballot (a new
    primary re-proposed from d). A second copy of a decree under the same ballot replaces the first; a copy
    under a lower ballot than the one already kept is stale and ignored.
    """
    kept: SortedDict = SortedDict()
    for mutation in records:
        superseded = [d for d in kept.irange(mutation.decree) if kept[d].ballot < mutation.ballot]
        for decree in superseded:
            del kept[decree]
        existing = kept.get(mutation.decree)
        if existing is None or existing.ballot <= mutation.ballot:
            kept[mutation.decree] = mutation
    return list(kept.values())


def _decode_mutation(payload: bytes) -> Mutation | str:
    try:
        mutation = Mutation.decode(payload)
    except Exception as exc:  # the CRC matched, so this is a writer bug, still a bad record
        return f"the record does not decode as a mutation ({exc})"
    if not all(isinstance(x, int) for x in (mutation.ballot, mutation.decree, mutation.timestamp_us)):
        return "the record is not a mutation"
    return mutation


def _frame_at(buf: bytes, offset: int, decode: Callable[[bytes], Any],
              max_record_bytes: int = MAX_RECORD_BYTES) -> tuple[Any, int] | str:
    """The record starting at ``offset`` and where it ends, or why there is no valid record there.
    ``decode`` turns a payload whose CRC matched into a record, or into a str saying why it is not one."""
    if len(buf) - offset < FRAME_HEADER.size:
        return "truncated frame header"
    length, crc = FRAME_HEADER.unpack_from(buf, offset)
    if length == 0 or length > max_record_bytes:
        return f"implausible record length {length}"
    end = offset + FRAME_HEADER.size + length
    if end > len(buf):
        return f"a {length}-byte record runs past the end of the file"
    payload = memoryview(buf)[offset + FRAME_HEADER.size : end]
    if crc32c(payload) != crc:
        return "CRC32C mismatch"
    record = decode(bytes(payload))
    return record if isinstance(record, str) else (record, end)


def _valid_frame_after(buf: bytes, start: int, data_end: int, decode: Callable[[bytes], Any],
                       max_record_bytes: int) -> bool:
    for pos in range(start, min(data_end, len(buf) - FRAME_HEADER.size + 1)):
        if not isinstance(_frame_at(buf, pos, decode, max_record_bytes), str):
            return True
    return False


def parse_records(path: Path, buf: bytes, tail_may_be_torn: bool,
                  decode: Callable[[bytes], Any] = _decode_mutation, *,
                  zero_fill_is_end: bool = False, max_record_bytes: int = MAX_RECORD_BYTES) -> tuple[list, int]:
    """Records in ``buf`` and the length of its valid prefix (shorter than ``buf`` only for a torn tail, or
    for the zero fill of a preallocated file when ``zero_fill_is_end``: the shared log writes its records
    into space it zero-filled ahead, in any of its segments). Shared with the replica server's shared log,
    which frames its records the same way."""
    records: list = []
    offset = 0
    while offset < len(buf):
        found = _frame_at(buf, offset, decode, max_record_bytes)
        if isinstance(found, str):
            # A frame's length field is never zero, so no frame starts in the trailing zeros: the search for a
            # valid frame after a bad one stops there (it would otherwise try every offset of a mostly empty
            # 32 MiB file).
            data_end = len(buf.rstrip(b"\0"))
            if zero_fill_is_end and offset >= data_end:
                return records, offset
            if tail_may_be_torn and not _valid_frame_after(buf, offset + 1, data_end, decode, max_record_bytes):
                return records, offset
            raise WalCorruptionError(path, offset, found)
        record, offset = found
        records.append(record)
    return records, offset


def frame(payload: bytes) -> bytes:
    return FRAME_HEADER.pack(len(payload), crc32c(payload)) + payload


class WriteAheadLog:
    """Use ``WriteAheadLog.open``. Safe to use from two threads: the owner appends and takes batches while a
    worker writes them; ``read_from``, ``gc`` and the properties never wait for a write or fsync."""

    def __init__(self, directory: Path, segments: list[_Segment], recovered: list[Mutation],
                 torn_tail: TornTail | None, *, fsync: bool, segment_max_bytes: int, incarnation: str = "") -> None:
        self.directory = directory
        self.incarnation = incarnation
        self.close_sync_failed = False  # close() could not fsync: what it wrote is durable only in a shared log
        self.torn_tail = torn_tail
        self.recovered_record_count = len(recovered)
        self._recovered = recovered
        self._segments = segments
        self._fsync = fsync
        self._segment_max_bytes = segment_max_bytes
        self._last_decree = recovered[-1].decree if recovered else 0
        self._fd: int | None = None
        self._active_segment: _Segment | None = None  # the segment self._fd belongs to
        self._retired_fds: dict[int, int] = {}  # segment seq -> fd of a rolled segment not yet removed
        self._needs_truncate_to: int | None = None  # set when a failed write could not be rolled back
        self._closed = False
        self._write_lock = threading.Lock()  # one write_batch at a time; held across the fsync
        self._meta_lock = threading.Lock()  # the segment list and sizes; never held across disk I/O
        self._pending_lock = threading.Lock()
        self._pending: list[Mutation] = []
        self._pending_frames: list[bytes] = []

    # ------------------------------------------------------------------------------------------ recovery

    @classmethod
    def open(cls, directory: str | os.PathLike, *, fsync: bool = True,
             segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES) -> "WriteAheadLog":
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            incarnation = _ensure_incarnation(directory, fsync)
            names = [path.name for path in directory.iterdir()]
        except OSError as exc:
            raise StorageError(f"cannot open the WAL directory {directory}: {exc.strerror or exc}") from exc
        found = sorted((int(m.group(1)), int(m.group(2)), directory / m.group(0))
                       for m in map(_SEGMENT_NAME.fullmatch, names) if m)
        segments: list[_Segment] = []
        recovered: list[Mutation] = []
        torn_tail = None
        for index, (seq, _first, path) in enumerate(found):
            is_last = index == len(found) - 1
            try:
                buf = path.read_bytes()
            except OSError as exc:
                raise StorageError(f"cannot read WAL segment {path}: {exc.strerror}") from exc
            records, valid_len = parse_records(path, buf, tail_may_be_torn=is_last)
            if valid_len < len(buf):
                torn_tail = TornTail(path, valid_len, len(buf) - valid_len)
                cls._cut(path, valid_len, fsync)
            segment = _Segment(path, seq, valid_len)
            for mutation in records:
                segment.note(mutation)
            recovered.extend(records)
            segments.append(segment)
        if segments and segments[-1].size == 0:  # left by a crash right after a roll, or emptied by the cut
            segments.pop().path.unlink(missing_ok=True)
        return cls(directory, segments, recovered, torn_tail, fsync=fsync, segment_max_bytes=segment_max_bytes,
                   incarnation=incarnation)

    @staticmethod
    def _cut(path: Path, length: int, fsync: bool) -> None:
        try:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.ftruncate(fd, length)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot cut the torn tail of WAL segment {path} at {length}: {exc.strerror}") from exc

    def take_recovered(self) -> list[Mutation]:
        """The mutations found at open, with ``resolve_log`` applied (every decree; once: memory is freed)."""
        recovered, self._recovered = self._recovered, []
        return resolve_log(recovered)

    # ------------------------------------------------------------------------------------------ appends

    def append(self, mutation: Mutation) -> None:
        """Queue a mutation for the next batch. Cheap: encodes in memory, never touches the disk.
        Raises PegasusError(ERR_VALUE_TOO_LARGE) for a mutation over MAX_RECORD_BYTES."""
        frame = encode_frame(mutation)
        with self._pending_lock:
            self._pending.append(mutation)
            self._pending_frames.append(frame)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def take_batch(self) -> WalBatch | None:
        with self._pending_lock:
            if not self._pending:
                return None
            mutations, frames = self._pending, self._pending_frames
            self._pending, self._pending_frames = [], []
        return WalBatch(tuple(mutations), b"".join(frames), mutations[0].decree, mutations[-1].decree)

    def write_batch(self, batch: WalBatch, *, sync: bool = True) -> "_Segment":
        """Write the batch and (with ``sync``) fsync once. Blocking. On failure raises StorageError and leaves
        the log as it was before the call, so the same batch may be retried, and a restart loses nothing
        acknowledged.

        ``sync=False`` writes without the fsync and returns the segment written, for a caller that pipelines:
        it writes batches one after another, in order, and runs ``sync(segment)`` for several of them at once,
        because a disk completes concurrent fsyncs far faster than back-to-back ones."""
        with self._write_lock:
            if self._closed:
                raise StorageError(f"the WAL in {self.directory} is closed")
            with self._meta_lock:
                segment = self._segments[-1] if self._segments else None
            try:
                self._truncate_failed_write()
                if segment is None or (segment.size > 0
                                       and segment.size + len(batch.data) > self._segment_max_bytes):
                    segment = self._roll(batch.first_decree)
                self._write_and_sync(segment, batch.data, sync)
            except OSError as exc:
                where = segment.path if segment is not None else self.directory
                raise StorageError(
                    f"writing the WAL ({where}) failed: {exc.strerror or exc}; the batch of decrees "
                    f"{batch.first_decree}..{batch.last_decree} is not durable (free disk space and retry)"
                ) from exc
            with self._meta_lock:
                segment.size += len(batch.data)
                for mutation in batch.mutations:
                    segment.note(mutation)
                self._last_decree = batch.last_decree
            return segment

    def sync(self, segment: "_Segment") -> None:
        """fsync what ``write_batch(..., sync=False)`` wrote to ``segment``. Safe to call from several threads
        at once, and concurrently with later writes. Raises StorageError; the written data is then in an
        unknown state, so the caller must stop acknowledging (the owner's replica goes to ERROR)."""
        if not self._fsync:
            return
        with self._meta_lock:  # a concurrent roll swaps the active fd
            fd = self._fd if segment is self._active_segment else self._retired_fds.get(segment.seq)
        if fd is None:
            return  # garbage-collected: everything in it was durable long ago
        try:
            os.fsync(fd)
        except OSError as exc:
            raise StorageError(f"fsync of WAL segment {segment.path} failed: {exc.strerror or exc}; "
                               "recent writes may not be durable (free disk space, then restart)") from exc

    def sync_append(self, mutation: Mutation) -> None:
        """append + take_batch + write_batch (anything already pending goes in the same batch)."""
        self.append(mutation)
        batch = self.take_batch()
        if batch is not None:
            self.write_batch(batch)

    def _write_and_sync(self, segment: _Segment, data: bytes, sync: bool = True) -> None:
        fd = self._active_fd(segment)
        start = segment.size
        try:
            # pwrite: one system call (and one release of the GIL) per batch, not a seek and a write.
            write_at(fd, data, start)
            if sync and self._fsync:
                os.fsync(fd)
        except OSError:
            self._roll_back_write(fd, start)
            raise

    def _roll_back_write(self, fd: int, length: int) -> None:
        """Cut a partial write off, so that a retry appends right after the last acknowledged record."""
        try:
            os.ftruncate(fd, length)
        except OSError:
            self._needs_truncate_to = length
            return
        if self._fsync:
            try:
                os.fsync(fd)
            except OSError:
                pass  # in the page cache the file is already cut; a crash now leaves a torn tail, cut at open

    def _truncate_failed_write(self) -> None:
        if self._needs_truncate_to is not None and self._fd is not None:
            os.ftruncate(self._fd, self._needs_truncate_to)
            self._needs_truncate_to = None

    def _active_fd(self, segment: _Segment) -> int:
        if self._fd is None:
            fd = os.open(segment.path, os.O_WRONLY)
            with self._meta_lock:
                self._fd, self._active_segment = fd, segment
        return self._fd

    def _roll(self, first_decree: int) -> _Segment:
        with self._meta_lock:
            seq = self._segments[-1].seq + 1 if self._segments else 1
        path = self.directory / segment_name(seq, first_decree)
        # No segment we know has this sequence number, so a file by this name is a leftover of a failed roll.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if self._fsync:
                fsync_dir(self.directory)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        segment = _Segment(path, seq)
        with self._meta_lock:
            if self._fd is not None:
                # Kept open until GC removes the segment: a pipelined sync of its last batch may still be running.
                self._retired_fds[self._active_segment.seq] = self._fd
            self._fd, self._active_segment = fd, segment
        with self._meta_lock:
            self._segments.append(segment)
        return segment

    # ------------------------------------------------------------------------------------------ reading

    def read_from(self, decree: int) -> Iterator[Mutation]:
        """Durable mutations with decree >= ``decree``, resolved as replay resolves them, in decree order."""
        with self._meta_lock:
            snapshot = [(s.path, s.size, s.max_decree) for s in self._segments]
        start = next((i for i, (_, _, top) in enumerate(snapshot) if top is not None and top >= decree),
                     len(snapshot))
        records: list[Mutation] = []
        for path, size, _ in snapshot[start:]:
            try:
                with open(path, "rb") as f:
                    buf = f.read(size)
            except FileNotFoundError:
                raise StorageError(f"WAL segment {path} was garbage-collected while being read; "
                                   f"decree {decree} is no longer in the log") from None
            except OSError as exc:
                raise StorageError(f"cannot read WAL segment {path}: {exc.strerror}") from exc
            segment_records, _ = parse_records(path, buf, tail_may_be_torn=False)
            records.extend(segment_records)
        return iter([m for m in resolve_log(records) if m.decree >= decree])

    @property
    def first_decree(self) -> int:
        """The lowest decree still in the log (0: empty)."""
        with self._meta_lock:
            lows = [s.min_decree for s in self._segments if s.min_decree is not None]
        return min(lows) if lows else 0

    @property
    def last_decree(self) -> int:
        """The decree of the last durable record (0: empty)."""
        return self._last_decree

    @property
    def total_bytes(self) -> int:
        with self._meta_lock:
            return sum(s.size for s in self._segments)

    @property
    def segment_paths(self) -> list[Path]:
        with self._meta_lock:
            return [s.path for s in self._segments]

    # ------------------------------------------------------------------------------------------ upkeep

    def gc(self, upto_decree: int) -> list[Path]:
        """Remove the oldest segments all of whose decrees are <= ``upto_decree``, never the active one.

        Only a prefix of the log is removed: a later segment may truncate records of an earlier one.
        Blocking (unlink and a directory fsync), but it does not wait for a batch being written.
        """
        with self._meta_lock:
            count = 0
            while (count < len(self._segments) - 1 and self._segments[count].max_decree is not None
                   and self._segments[count].max_decree <= upto_decree):
                count += 1
            doomed = [s.path for s in self._segments[:count]]
            # Everything in these segments is at or below a checkpoint, so no sync of theirs is in flight.
            retired = [self._retired_fds.pop(s.seq) for s in self._segments[:count] if s.seq in self._retired_fds]
            del self._segments[:count]
        for fd in retired:
            os.close(fd)
        for path in doomed:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot remove WAL segment {path}: {exc.strerror}") from exc
        if doomed and self._fsync:
            try:
                fsync_dir(self.directory)
            except OSError as exc:
                raise StorageError(f"cannot fsync the WAL directory {self.directory}: {exc.strerror}") from exc
        return doomed

    def sync_all(self) -> None:
        """fsync every segment still open (blocking): what was written so far no longer needs the shared
        log's copy. Raises StorageError. A closed log synced itself when it closed."""
        with self._write_lock:
            if self._closed or not self._fsync:
                return
            self._fsync_open_segments()

    def _fsync_open_segments(self) -> None:
        """With the write lock held. Raises StorageError."""
        try:
            for fd in list(self._retired_fds.values()) + ([self._fd] if self._fd is not None else []):
                os.fsync(fd)
        except OSError as exc:
            raise StorageError(f"fsync of the WAL in {self.directory} failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Waits for a batch being written; pending (untaken) appends are dropped. What was written is fsynced
        first: it may be durable only in the server's shared log, which does not keep it forever."""
        with self._write_lock:
            self._closed = True
            if self._fsync:
                try:
                    self._fsync_open_segments()
                except StorageError:
                    self.close_sync_failed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            for fd in self._retired_fds.values():
                os.close(fd)
            self._retired_fds.clear()
