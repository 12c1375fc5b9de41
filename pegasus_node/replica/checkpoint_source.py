"""The primary's side of learning: what a learner is sent (``load_learn_state``), and for a checkpoint a small
reference in the learn response, with the file's bytes in chunks over ``replica.checkpoint_chunk``.

A checkpoint can be far bigger than one RPC frame (``[core] max_frame_bytes``), so it never travels inside a
``LearnResponse``: the response names it (``CheckpointReference``) and the learner fetches it in byte ranges
(checkpoint_download.py). Checkpoint files are immutable once in place, and a primary keeps its two newest
(storage/checkpoint.py), so a referenced file stays readable while the learner fetches it unless two newer
checkpoints replace it first; then the learner is told it is gone and learns again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from twisted.internet import defer, threads

from pegasus_node.errors import ErrorCode, PegasusError, invalid_parameters
from pegasus_node.storage.checkpoint import checkpoint_path, list_checkpoints
from pegasus_node.twisted_rpc import expect

CHUNK_METHOD = "replica.checkpoint_chunk"
MAX_CHUNK_BYTES = 4 << 20
# The engine's layout: ``<replica dir>/checkpoints/`` (storage/engine.py).
CHECKPOINTS_SUBDIR = "checkpoints"


@dataclass(frozen=True, slots=True)
class CheckpointReference:
    """Names a checkpoint file of the sender's replica: what a ``LearnResponse`` carries instead of its bytes."""

    file: str
    size: int
    decree: int

    def to_wire(self) -> dict:
        return {"file": self.file, "size": self.size, "decree": self.decree}

    @classmethod
    def from_wire(cls, data: Any) -> "CheckpointReference | None":
        """The reference ``data`` holds, or None when it is not a well-formed one."""
        if not isinstance(data, dict):
            return None
        values = [data.get(name) for name in ("file", "size", "decree")]
        if type(values[0]) is not str or not all(type(v) is int and v >= 0 for v in values[1:]):
            return None
        if checkpoint_decree(values[0]) != values[2]:
            return None
        return cls(*values)


def checkpoint_decree(name: str) -> int | None:
    """The decree in a checkpoint file name (``checkpoint.<decree:020d>.ckpt``), or None for any other name.
    Only exact names pass, so a name that passes cannot point outside the checkpoint directory."""
    parts = name.split(".")
    if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
        return None
    decree = int(parts[1])
    return decree if checkpoint_path(Path(), decree).name == name else None


def reference_checkpoint(path: Path) -> CheckpointReference:
    """The reference to send a learner for the checkpoint at ``path`` (a stat: blocking, but cheap). The
    file's content needs no checksum here: the learner's engine verifies a checkpoint's CRCs on install."""
    return CheckpointReference(path.name, path.stat().st_size, checkpoint_decree(path.name))


def load_learn_state(engine: Any, load: Any, inline_limit: int) -> tuple:
    """What a primary sends a learner (``LoadLearnState``, on a worker thread): decrees from the WAL, or the
    newest checkpoint plus the WAL after it, as ``(load_id, checkpoint_decree, checkpoint, mutations)``.

    The checkpoint goes as a reference (its name, size and decree): the learner fetches it in chunks. A learner
    of an older version gets its bytes instead, so that the order of a rolling upgrade does not matter; those
    must fit in a learn response (``inline_limit`` bytes), as they had to before."""
    wal = engine.wal
    if wal.first_decree and wal.first_decree <= load.start_decree:
        mutations = [m for m in wal.read_from(load.start_decree) if m.decree <= load.end_decree]
        if mutations and mutations[0].decree == load.start_decree:
            return load.load_id, 0, None, mutations
    path = engine.latest_checkpoint_path
    if path is None:
        mutations = [m for m in wal.read_from(1) if m.decree <= load.end_decree]
        return load.load_id, 0, None, mutations
    reference = reference_checkpoint(path)
    if not load.by_reference and reference.size > inline_limit:
        raise PegasusError(ErrorCode.ERR_VALUE_TOO_LARGE,
                           f"the learner is of an older version, which takes a checkpoint only inside the learn "
                           f"response, and this one is {reference.size} bytes (at most {inline_limit} fit); "
                           "upgrade that replica server")
    mutations = [m for m in wal.read_from(reference.decree + 1) if m.decree <= load.end_decree]
    checkpoint = reference.to_wire() if load.by_reference else path.read_bytes()
    return load.load_id, reference.decree, checkpoint, mutations


def chunk_limit(max_frame_bytes: int) -> int:
    """The most bytes one chunk reply carries: well under the frame limit, whatever it is configured to."""
    return max(1, min(MAX_CHUNK_BYTES, max_frame_bytes // 2))


def serve_chunk(lookup: Callable[[Any], Any], body: Any, max_frame_bytes: int, address: str) -> defer.Deferred:
    """``replica.checkpoint_chunk``: ``{gpid, file, offset, length}`` -> ``{data, size}``, where ``size`` is
    the file's size and ``data`` up to ``length`` bytes from ``offset`` (fewer at the end of the file, and
    never more than ``chunk_limit``). ``lookup(gpid)`` is the server's replica lookup."""
    b = expect(body, {"gpid": list, "file": str, "offset": int, "length": int})
    replica = lookup(b["gpid"])
    if b["offset"] < 0 or b["length"] < 1:
        raise invalid_parameters(f"offset must be >= 0 and length >= 1, got offset {b['offset']} and "
                                 f"length {b['length']}")
    name, gpid = b["file"], f"{b['gpid'][0]}.{b['gpid'][1]}"
    if checkpoint_decree(name) is None:
        raise invalid_parameters(f"{name!r} is not a checkpoint file name (checkpoint.<20-digit decree>.ckpt)")
    held = {path.name: path for _, path in list_checkpoints(replica.directory / CHECKPOINTS_SUBDIR)}
    if name not in held:
        raise _gone(name, gpid, address)
    d = threads.deferToThread(read_range, held[name], b["offset"], min(b["length"], chunk_limit(max_frame_bytes)))

    def removed_meanwhile(failure):
        failure.trap(FileNotFoundError)
        raise _gone(name, gpid, address)

    return d.addErrback(removed_meanwhile)


def _gone(name: str, gpid: str, address: str) -> PegasusError:
    return PegasusError(ErrorCode.ERR_OBJECT_NOT_FOUND,
                        f"checkpoint {name} of partition {gpid} is gone from {address}: newer checkpoints "
                        "replaced it. The learner learns again and is sent the newest one")


def read_range(path: Path, offset: int, length: int) -> dict:
    """Blocking (a worker thread): up to ``length`` bytes of ``path`` from ``offset``, and its size."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if offset > size:
            raise invalid_parameters(f"offset {offset} is past the end of {path.name} ({size} bytes)")
        handle.seek(offset)
        return {"data": handle.read(length), "size": size}
