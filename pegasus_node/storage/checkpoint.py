"""Checkpoints: the committed state at decree D, in key order, in ``checkpoint.<D:020d>.ckpt``.

File layout (all integers big-endian)::

    header   magic "PEGCKPT\\0", u16 version, u64 decree, u64 record count, u64 apply clock (us), u32 CRC32C
    chunks   b"C", u32 length, u32 CRC32C, msgpack [[key, value, expire_ts, timetag], ...]
    trailer  b"E", "PEGCKEND", u64 record count, u64 chunk count, u32 CRC32C of the trailer

Every byte is covered by a CRC, and the trailer proves the file is complete, so a damaged or truncated
checkpoint is detected; loading then falls back to the older one. A checkpoint is written to a temporary
file, fsynced, renamed into place, and the directory fsynced: a crash leaves either the old set or the new.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

import msgpack
from crc32c import crc32c

from .errors import StorageError
from .fsutil import fsync_dir
from .memtable import Record

MAGIC = b"PEGCKPT\x00"
TRAILER_MAGIC = b"PEGCKEND"
VERSION = 1
KEEP_CHECKPOINTS = 2
_HEADER = struct.Struct(">8sHQQQ")
_U32 = struct.Struct(">I")
_CHUNK = struct.Struct(">II")
_TRAILER = struct.Struct(">8sQQ")
_CHUNK_RECORDS = 4096
_CHUNK_TARGET_BYTES = 4 << 20
_MAX_CHUNK_BYTES = 1 << 30
_NAME = re.compile(r"checkpoint\.(\d{20})\.ckpt")


@dataclass(frozen=True, slots=True)
class CheckpointSnapshot:
    """A consistent copy of the state at ``decree``: what ``write_checkpoint`` writes."""

    decree: int
    apply_clock_us: int  # the engine's expiry clock at ``decree`` (see StorageEngine.apply)
    items: Iterable  # (encoded key, Record) pairs in key order, with a len(): a list, or a MemtableSnapshot


@dataclass(frozen=True, slots=True)
class LoadedCheckpoint:
    path: Path
    decree: int
    apply_clock_us: int
    items: list


class CheckpointDamaged(StorageError):
    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"checkpoint {path} is damaged: {reason}")


def checkpoint_path(directory: Path, decree: int) -> Path:
    return directory / f"checkpoint.{decree:020d}.ckpt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(decree, path) of every checkpoint file, newest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.fullmatch(p.name))]
    return sorted(found, reverse=True)



def write_checkpoint(directory: Path, snapshot: CheckpointSnapshot, *, fsync: bool = True) -> Path:
    """Write ``snapshot`` durably, then keep only the newest KEEP_CHECKPOINTS checkpoints. Blocking."""
    final = checkpoint_path(directory, snapshot.decree)
    temp = final.with_name(final.name + ".tmp")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(temp, "wb") as f:
            _write_body(f, snapshot)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(temp, final)
        if fsync:
            fsync_dir(directory)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StorageError(f"writing checkpoint {final} failed: {exc.strerror or exc}") from exc
    _remove_old(directory)
    return final


def _remove_old(directory: Path) -> None:
    """Keep the newest KEEP_CHECKPOINTS, and set-aside damaged ones only while they are newer than those."""
    found = list_checkpoints(directory)
    for _, old in found[KEEP_CHECKPOINTS:]:
        old.unlink(missing_ok=True)
    oldest_kept = found[:KEEP_CHECKPOINTS][-1][0]
    for aside in directory.glob("checkpoint.*.ckpt.damaged"):
        match = _NAME.fullmatch(aside.name.removesuffix(".damaged"))
        if match and int(match.group(1)) < oldest_kept:
            aside.unlink(missing_ok=True)


def install_checkpoint_file(directory: Path, source: Path, *, fsync: bool = True) -> LoadedCheckpoint:
    """Verify a checkpoint file from elsewhere (a learner's download) and make it this directory's newest.

    A damaged file raises CheckpointDamaged and changes nothing. Local checkpoints above its decree are
    removed, so that a restart cannot load a state that the installed one replaced.
    """
    loaded = read_checkpoint(source)
    final = checkpoint_path(directory, loaded.decree)
    temp = final.with_name(final.name + ".tmp")
    try:
        if source.resolve() != final.resolve():
            directory.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, temp)
            if fsync:
                with open(temp, "rb") as f:
                    os.fsync(f.fileno())
            loaded = read_checkpoint(temp)  # what was copied, not what the source held a moment ago
            os.replace(temp, final)
        for decree, path in list_checkpoints(directory):
            if decree > loaded.decree:
                path.unlink()
        if fsync:
            fsync_dir(directory)
    except (OSError, CheckpointDamaged) as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, CheckpointDamaged):
            raise
        raise StorageError(f"installing checkpoint {source} as {final} failed: {exc.strerror or exc}") from exc
    _remove_old(directory)
    return LoadedCheckpoint(final, loaded.decree, loaded.apply_clock_us, loaded.items)


def _write_body(f: BinaryIO, snapshot: CheckpointSnapshot) -> None:
    header = _HEADER.pack(MAGIC, VERSION, snapshot.decree, len(snapshot.items), snapshot.apply_clock_us)
    f.write(header + _U32.pack(crc32c(header)))
    chunks = 0
    rows: list[list] = []
    row_bytes = 0
    for key, rec in snapshot.items:
        rows.append([key, rec.value, rec.expire_ts, rec.timetag])
        row_bytes += len(key) + len(rec.value)
        if len(rows) >= _CHUNK_RECORDS or row_bytes >= _CHUNK_TARGET_BYTES:
            _write_chunk(f, rows)
            chunks += 1
            rows, row_bytes = [], 0
    if rows:
        _write_chunk(f, rows)
        chunks += 1
    trailer = _TRAILER.pack(TRAILER_MAGIC, len(snapshot.items), chunks)
    f.write(b"E" + trailer + _U32.pack(crc32c(trailer)))


def _write_chunk(f: BinaryIO, rows: list[list]) -> None:
    payload = msgpack.packb(rows, use_bin_type=True)
    f.write(b"C" + _CHUNK.pack(len(payload), crc32c(payload)) + payload)


def read_checkpoint(path: Path) -> LoadedCheckpoint:
    """Load and verify a checkpoint file; raises CheckpointDamaged (a StorageError) if anything is off."""
    try:
        with open(path, "rb") as f:
            return _read_body(path, f)
    except OSError as exc:
        raise CheckpointDamaged(path, f"cannot read it: {exc.strerror or exc}") from exc


def _read_exact(path: Path, f: BinaryIO, size: int, what: str) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise CheckpointDamaged(path, f"the file ends inside the {what} (truncated)")
    return data


def _read_body(path: Path, f: BinaryIO) -> LoadedCheckpoint:
    header = _read_exact(path, f, _HEADER.size, "header")
    (header_crc,) = _U32.unpack(_read_exact(path, f, _U32.size, "header"))
    magic, version, decree, count, clock = _HEADER.unpack(header)
    if magic != MAGIC:
        raise CheckpointDamaged(path, "not a checkpoint file (bad magic)")
    if crc32c(header) != header_crc:
        raise CheckpointDamaged(path, "header CRC mismatch")
    if version != VERSION:
        raise CheckpointDamaged(path, f"unsupported format version {version}")
    match = _NAME.fullmatch(path.name)
    if match and int(match.group(1)) != decree:
        raise CheckpointDamaged(path, f"the header says decree {decree}, the file name another")
    items: list[tuple[bytes, Record]] = []
    chunks = 0
    while True:
        tag = _read_exact(path, f, 1, "section tag")
        if tag == b"E":
            break
        if tag != b"C":
            raise CheckpointDamaged(path, f"bad section tag {tag!r} at byte {f.tell() - 1}")
        offset = f.tell() - 1
        length, crc = _CHUNK.unpack(_read_exact(path, f, _CHUNK.size, "chunk header"))
        if length > _MAX_CHUNK_BYTES:
            raise CheckpointDamaged(path, f"implausible chunk length {length} at byte {offset}")
        payload = _read_exact(path, f, length, "chunk")
        if crc32c(payload) != crc:
            raise CheckpointDamaged(path, f"CRC mismatch in the chunk at byte {offset}")
        items.extend(_decode_chunk(path, payload, offset))
        chunks += 1
    trailer = _read_exact(path, f, _TRAILER.size, "trailer")
    (trailer_crc,) = _U32.unpack(_read_exact(path, f, _U32.size, "trailer"))
    if crc32c(trailer) != trailer_crc:
        raise CheckpointDamaged(path, "trailer CRC mismatch")
    trailer_magic, trailer_count, trailer_chunks = _TRAILER.unpack(trailer)
    if trailer_magic != TRAILER_MAGIC or trailer_count != count or trailer_chunks != chunks or len(items) != count:
        raise CheckpointDamaged(path, f"record count mismatch (header {count}, trailer {trailer_count}, "
                                      f"read {len(items)} in {chunks} chunks)")
    if f.read(1):
        raise CheckpointDamaged(path, "unexpected bytes after the trailer")
    return LoadedCheckpoint(path, decree, clock, items)


def _decode_chunk(path: Path, payload: bytes, offset: int) -> list[tuple[bytes, Record]]:
    try:
        rows = msgpack.unpackb(payload, raw=False)
        return [(key, Record(value, expire_ts, timetag)) for key, value, expire_ts, timetag in rows]
    except Exception as exc:  # the CRC matched, so this is a writer bug; still unusable
        raise CheckpointDamaged(path, f"the chunk at byte {offset} does not decode ({exc})") from exc


def load_newest_valid(directory: Path) -> tuple[LoadedCheckpoint | None, list[str], list[int]]:
    """The newest checkpoint that verifies, a warning for each newer one that did not, and their decrees.

    A damaged file is renamed to ``*.damaged``: kept for inspection, never loaded again, but still reported
    (with its decree) on every later open until an operator removes it, so that the engine keeps refusing
    to start from an older state that the log cannot bring up to it. Leftover temporary files from a crash
    during a write are removed.
    """
    warnings: list[str] = []
    damaged: list[int] = []
    if not directory.is_dir():
        return None, warnings, damaged
    for temp in directory.glob("checkpoint.*.ckpt.tmp"):
        temp.unlink(missing_ok=True)
    loaded = None
    for decree, path in list_checkpoints(directory):
        try:
            loaded = read_checkpoint(path)
            break
        except CheckpointDamaged as exc:
            aside = path.with_name(path.name + ".damaged")
            try:
                os.replace(path, aside)
            except OSError:
                aside = path
            damaged.append(decree)
            warnings.append(f"checkpoint {path.name} is damaged ({exc.reason}); set aside as {aside.name}; "
                            f"falling back to an older checkpoint")
    base = loaded.decree if loaded else 0
    for aside in sorted(directory.glob("checkpoint.*.ckpt.damaged")):
        match = _NAME.fullmatch(aside.name.removesuffix(".damaged"))
        if match and int(match.group(1)) > base and int(match.group(1)) not in damaged:
            damaged.append(int(match.group(1)))
            warnings.append(f"checkpoint {aside.name} was found damaged by an earlier open; falling back to an "
                            f"older checkpoint")
    return loaded, warnings, damaged
