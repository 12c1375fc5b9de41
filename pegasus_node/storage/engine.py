"""One replica's storage: memtable + write-ahead log + checkpoints, with recovery.

Directory layout: ``<dir>/LOCK`` (held while open, so two processes never share a replica),
``<dir>/wal/`` (segments) and ``<dir>/checkpoints/``.

The engine does not decide what is committed. ``open`` loads the newest valid checkpoint and hands the WAL
mutations above it to the owner as ``recovered_log``; the owner (PacificA) applies those it knows to be
committed, in decree order, with ``apply``. Appending to the log is also the owner's job (``engine.wal``),
because logging (prepare) and applying (commit) happen at different times.

Expiry while applying uses the engine's apply clock: the largest ``timestamp_us`` applied so far. It equals
the mutation's own timestamp whenever the primary's clock moves forward, and, being monotonic and derived
only from the applied mutations (it is saved in checkpoints), it lets every replica drop expired records
from memory at the same points without ever changing the outcome of a later mutation.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pegasus_node.base.keys import MAX_HASH_KEY_LEN, encode_key, to_bytes
from pegasus_node.base.timetag import make_timetag
from pegasus_node.errors import invalid_parameters

from . import reads
from .checkpoint import (
    KEEP_CHECKPOINTS,
    CheckpointSnapshot,
    LoadedCheckpoint,
    install_checkpoint_file,
    list_checkpoints,
    load_newest_valid,
    write_checkpoint,
)
from .errors import RESTORE_ADVICE, ApplyOrderError, StorageError
from .fsutil import lock_directory
from .memtable import Memtable, Record
from .mutation import Mutation
from .operations import apply_writes
from .wal import DEFAULT_SEGMENT_MAX_BYTES, TornTail, WriteAheadLog


@dataclass(frozen=True)
class InstalledCheckpoint:
    """A learned checkpoint copied in and loaded, not yet served (``StorageEngine.adopt_checkpoint``)."""

    decree: int
    apply_clock_us: int
    memtable: Memtable


@dataclass
class RecoveryReport:
    checkpoint_decree: int  # 0: started without a checkpoint
    checkpoint_path: Path | None
    wal_records: int  # every record read from the WAL
    wal_mutations: int  # mutations above the checkpoint after replay resolution (len(recovered_log))
    torn_tail: TornTail | None = None
    fallbacks: list[str] = field(default_factory=list)  # damaged checkpoints that were skipped
    gap: tuple[int, int] | None = None  # decrees missing between the checkpoint and the first logged one

    def summary(self) -> str:
        parts = [f"checkpoint decree {self.checkpoint_decree}",
                 f"{self.wal_mutations} WAL mutations above it ({self.wal_records} records read)"]
        if self.torn_tail:
            t = self.torn_tail
            parts.append(f"torn tail cut: {t.bytes_cut} bytes at offset {t.offset} of {t.segment.name}")
        if self.gap:
            parts.append(f"decrees {self.gap[0]}..{self.gap[1]} are missing from the WAL")
        parts.extend(self.fallbacks)
        return "; ".join(parts)


class StorageEngine:
    """Use ``StorageEngine.open``. Not thread-safe except where noted: ``write_checkpoint`` (and the WAL's
    ``write_batch``) may run on a worker thread while the owner's thread applies and reads."""

    def __init__(self, directory: Path, lock_fd: int, wal: WriteAheadLog, loaded: LoadedCheckpoint | None,
                 recovery: RecoveryReport, recovered_log: list[Mutation], *, fsync: bool, cluster_id: int) -> None:
        self.directory = directory
        self.wal = wal
        self.recovery = recovery
        self.recovered_log = recovered_log
        self._lock_fd: int | None = lock_fd
        self._fsync = fsync
        self._cluster_id = cluster_id
        self._checkpoint_dir = directory / "checkpoints"
        self._memtable = Memtable(loaded.items if loaded else ())
        self._last_applied = loaded.decree if loaded else 0
        self._checkpoint_decree = self._last_applied
        self._clock_us = loaded.apply_clock_us if loaded else 0

    @classmethod
    def open(cls, directory: str | os.PathLike, *, fsync: bool = True,
             segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES, cluster_id: int = 1) -> "StorageEngine":
        """Recover: the newest valid checkpoint, then the WAL above it (not applied: see ``recovered_log``).

        Raises StorageError (WalCorruptionError for a corrupt log) when the data cannot be trusted.
        """
        make_timetag(0, cluster_id)  # validates cluster_id before anything is touched
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the storage directory {directory}: {exc.strerror}") from exc
        lock_fd = lock_directory(directory, "engine")
        try:
            loaded, fallbacks, damaged = load_newest_valid(directory / "checkpoints")
            wal = WriteAheadLog.open(directory / "wal", fsync=fsync, segment_max_bytes=segment_max_bytes)
            try:
                resolved = wal.take_recovered()
                base = loaded.decree if loaded else 0
                log = [m for m in resolved if m.decree > base]
                report = RecoveryReport(base, loaded.path if loaded else None, wal.recovered_record_count,
                                        len(log), wal.torn_tail, fallbacks)
                if log and log[0].decree != base + 1:
                    report.gap = (base + 1, log[0].decree - 1)
                covered = log[-1].decree if log else base
                if damaged and (report.gap or max(damaged) > covered):
                    raise StorageError(
                        f"in {directory}: {'; '.join(fallbacks)}; the WAL does not hold the decrees between the "
                        f"valid checkpoint (decree {base}) and decree {max(damaged)}, so acknowledged writes "
                        f"would be lost; {RESTORE_ADVICE}")
            except BaseException:
                wal.close()
                raise
        except OSError as exc:
            os.close(lock_fd)
            raise StorageError(f"cannot recover the storage in {directory}: {exc}") from exc
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(directory, lock_fd, wal, loaded, report, log, fsync=fsync, cluster_id=cluster_id)

    # ------------------------------------------------------------------------------------------ applying

    @property
    def last_applied_decree(self) -> int:
        return self._last_applied

    @property
    def checkpoint_decree(self) -> int:
        """The decree of the newest checkpoint on disk (0: none)."""
        return self._checkpoint_decree

    def apply(self, mutation: Mutation) -> list[dict]:
        """Apply a committed mutation; one result dict per write op (errors are results, see operations).

        A decree at or below ``last_applied_decree`` was applied already: it is ignored and [] returned.
        Any other decree but ``last_applied_decree + 1`` raises ApplyOrderError.
        """
        if mutation.decree <= self._last_applied:
            return []
        if mutation.decree != self._last_applied + 1:
            raise ApplyOrderError(f"cannot apply decree {mutation.decree}: the last applied decree is "
                                  f"{self._last_applied}, decrees must be applied in order")
        self._clock_us = max(self._clock_us, mutation.timestamp_us)
        now_s = self._clock_us // 1_000_000
        timetag = make_timetag(mutation.timestamp_us, self._cluster_id)
        results = apply_writes(self._memtable, mutation.writes, now_s=now_s, timetag=timetag)
        self._memtable.purge_expired(now_s)
        self._last_applied = mutation.decree
        return results

    # ------------------------------------------------------------------------------------------ reads

    @staticmethod
    def _key(hash_key: bytes | str, sort_key: bytes | str) -> bytes:
        hash_key = to_bytes(hash_key, "hash key")
        if len(hash_key) > MAX_HASH_KEY_LEN:
            raise invalid_parameters(f"hash key is {len(hash_key)} bytes; the limit is {MAX_HASH_KEY_LEN}")
        return encode_key(hash_key, to_bytes(sort_key, "sort key"))

    def get_record(self, hash_key: bytes | str, sort_key: bytes | str, now: float | None = None) -> Record | None:
        return self._memtable.get_live(self._key(hash_key, sort_key), time.time() if now is None else now)

    def get(self, hash_key: bytes | str, sort_key: bytes | str, now: float | None = None) -> bytes | None:
        record = self.get_record(hash_key, sort_key, now)
        return None if record is None else record.value

    def exist(self, hash_key: bytes | str, sort_key: bytes | str, now: float | None = None) -> bool:
        return self.get_record(hash_key, sort_key, now) is not None

    def ttl(self, hash_key: bytes | str, sort_key: bytes | str, now: float | None = None) -> int | None:
        """None: absent; -1: no expiry; else whole seconds left (rounded up, so a live record has >= 1)."""
        now = time.time() if now is None else now
        record = self._memtable.get_live(self._key(hash_key, sort_key), now)
        if record is None:
            return None
        return -1 if record.expire_ts == 0 else max(1, math.ceil(record.expire_ts - now))

    def multi_get(self, hash_key: bytes | str, sort_keys: list[bytes] | None = None, start_sk: bytes = b"",
                  stop_sk: bytes = b"", start_inclusive: bool = True, stop_inclusive: bool = False,
                  max_kv_count: int = -1, max_kv_size: int = -1, no_value: bool = False,
                  now: float | None = None) -> tuple[list[tuple[bytes, bytes]], bool]:
        """(sort_key, value) pairs and ``complete``; see ``reads.multi_get`` for the limits."""
        self._key(hash_key, b"")
        return reads.multi_get(
            self._memtable, to_bytes(hash_key, "hash key"),
            sort_keys=[to_bytes(sk, "sort key") for sk in sort_keys] if sort_keys else None,
            start_sk=to_bytes(start_sk, "sort key"), stop_sk=to_bytes(stop_sk, "sort key"),
            start_inclusive=start_inclusive, stop_inclusive=stop_inclusive, max_kv_count=max_kv_count,
            max_kv_size=max_kv_size, no_value=no_value, now=time.time() if now is None else now)

    def sortkey_count(self, hash_key: bytes | str, now: float | None = None) -> int:
        self._key(hash_key, b"")
        return reads.sortkey_count(self._memtable, to_bytes(hash_key, "hash key"),
                                   time.time() if now is None else now)

    def scan(self, start_key: bytes = b"", stop_key: bytes = b"", start_inclusive: bool = True,
             stop_inclusive: bool = False, limit: int = 100, no_value: bool = False,
             now: float | None = None) -> tuple[list[tuple[bytes, bytes, bytes]], bytes | None]:
        """Over storage keys (``keys.encode_key``); see ``reads.scan`` for ``next_start_key``."""
        return reads.scan(self._memtable, to_bytes(start_key, "start key"), to_bytes(stop_key, "stop key"),
                          start_inclusive, stop_inclusive, limit, no_value, time.time() if now is None else now)

    # ------------------------------------------------------------------------------------------ checkpoints

    def checkpoint_snapshot(self) -> CheckpointSnapshot:
        """A consistent copy of the state at ``last_applied_decree`` (O(n) but in C; call on the owner's
        thread, between applies)."""
        return CheckpointSnapshot(self._last_applied, self._clock_us, self._memtable.snapshot())

    def write_checkpoint(self, snapshot: CheckpointSnapshot) -> Path:
        """Write ``snapshot`` durably (blocking I/O; may run on a worker thread). Keeps the newest 2."""
        path = write_checkpoint(self._checkpoint_dir, snapshot, fsync=self._fsync)
        self._checkpoint_decree = max(self._checkpoint_decree, snapshot.decree)
        return path

    def gc_wal(self, floor: int | None = None) -> list[Path]:
        """Remove the WAL segments whose decrees are all <= min(oldest kept checkpoint, ``floor``).

        The oldest kept checkpoint (not the newest) bounds it, so that falling back from a damaged newest
        checkpoint still finds every decree it needs in the log. ``floor`` is the highest decree that no
        learner or duplication still needs (None: no such constraint). Returns the removed paths.
        """
        kept = list_checkpoints(self._checkpoint_dir)[:KEEP_CHECKPOINTS]
        if not kept:
            return []
        upto = kept[-1][0]
        if floor is not None:
            upto = min(upto, floor)
        return self.wal.gc(upto)

    def checkpoint(self, floor: int | None = None) -> Path:
        """All three steps on the calling thread: snapshot, write, gc_wal."""
        path = self.write_checkpoint(self.checkpoint_snapshot())
        self.gc_wal(floor)
        return path

    @property
    def latest_checkpoint_path(self) -> Path | None:
        """The newest checkpoint file, e.g. to send to a learner."""
        found = list_checkpoints(self._checkpoint_dir)
        return found[0][1] if found else None

    def install_checkpoint(self, source: str | os.PathLike) -> int:
        """Replace the whole state with a checkpoint file (a learner's catch-up); returns its decree.

        The file is verified first (a damaged one raises CheckpointDamaged and changes nothing), then copied
        in durably. The WAL is left alone: after a restart ``recovered_log`` holds its mutations above the
        installed decree, for the owner to judge.
        """
        return self.adopt_checkpoint(self.load_checkpoint_to_install(source))

    def load_checkpoint_to_install(self, source: str | os.PathLike) -> InstalledCheckpoint:
        """The slow half of ``install_checkpoint``, safe on a worker thread while the owner keeps using the
        engine: verify and copy the file in durably, and build its memtable. Nothing the engine serves changes
        until ``adopt_checkpoint``; no checkpoint of this engine may be written meanwhile."""
        loaded = install_checkpoint_file(self._checkpoint_dir, Path(source), fsync=self._fsync)
        return InstalledCheckpoint(loaded.decree, loaded.apply_clock_us, Memtable(loaded.items))

    def adopt_checkpoint(self, installed: InstalledCheckpoint) -> int:
        """The quick half, on the owner's thread: serve the installed state from now on; returns its decree."""
        self._memtable = installed.memtable
        self._last_applied = self._checkpoint_decree = installed.decree
        self._clock_us = installed.apply_clock_us
        return installed.decree

    # ------------------------------------------------------------------------------------------ upkeep

    def stats(self) -> dict:
        return {
            "directory": str(self.directory),
            "record_count": len(self._memtable),
            "last_applied_decree": self._last_applied,
            "checkpoint_decree": self._checkpoint_decree,
            "checkpoint_count": len(list_checkpoints(self._checkpoint_dir)),
            "wal_bytes": self.wal.total_bytes,
            "wal_segments": len(self.wal.segment_paths),
            "wal_first_decree": self.wal.first_decree,
            "wal_last_decree": self.wal.last_decree,
            "wal_pending": self.wal.pending_count,
        }

    def close(self) -> None:
        """Close the WAL and release the directory. Pending (unwritten) appends are dropped."""
        self.wal.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "StorageEngine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
