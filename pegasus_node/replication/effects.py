"""What the replication core asks its edge to do. The edge carries out a returned list in order.

Three effects change durable state and must be done before the ones after them in the same list:
``PersistBallot`` and ``InstallCheckpoint`` synchronously (they are small or rare), and ``AppendLog`` in
order (its durability is reported later, by ``ReplicaCore.on_log_durable``). The others may run
asynchronously; the ones that produce a result feed it back as an event:

    AppendLog         -> on_log_durable(now, seq)            once every append up to seq is fsynced
    ApplyMutation     -> on_apply_finished(now, decree, results)
    LoadLearnState    -> on_learn_state_loaded(now, load_id, checkpoint_decree, checkpoint, mutations)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable

from pegasus_node.errors import ErrorCode
from pegasus_node.replication.config import ConfigChangeRequest, Gpid, PartitionStatus
from pegasus_node.replication.messages import Message
from pegasus_node.storage.mutation import Mutation


@dataclass(frozen=True, slots=True)
class PersistBallot:
    """Durably record the ballot this replica has accepted, before carrying out anything after it.
    A restarted replica passes it back to ``ReplicaCore(ballot=...)``: it then refuses to be primary at
    that ballot again, because it may have proposed mutations at it that it lost."""

    gpid: Gpid
    ballot: int


@dataclass(frozen=True, slots=True)
class AppendLog:
    """Append ``mutation`` to the partition's WAL. The log afterwards holds it at its decree and nothing
    beyond (the append supersedes every logged decree >= ``mutation.decree``; every superseded record has a
    lower ballot, so a replay that lets a higher ballot truncate, as ``storage.wal.resolve_log`` does, gives
    the same log). ``seq`` numbers the appends of this core; report durability with ``on_log_durable``."""

    gpid: Gpid
    mutation: Mutation
    seq: int


@dataclass(frozen=True, slots=True)
class InstallCheckpoint:
    """Replace the storage state with ``checkpoint`` (opaque, as the primary's edge produced it) at
    ``decree``, durably, before anything after it. The log continues at ``decree + 1``."""

    gpid: Gpid
    decree: int
    checkpoint: Any


@dataclass(frozen=True, slots=True)
class ApplyMutation:
    """Apply a committed mutation to the storage engine (decrees come in order, each once), then call
    ``on_apply_finished(now, decree, results)`` with the engine's per-op results."""

    gpid: Gpid
    mutation: Mutation


@dataclass(frozen=True, slots=True)
class Send:
    to: str
    message: Message


@dataclass(frozen=True, slots=True)
class ReplyClient:
    """Answer a client write. ``error`` ERR_OK: committed and applied at ``decree``, ``results`` are the
    storage engine's results for this request's ops. ERR_INVALID_STATE: not written (not the primary, or
    no lease): refresh the configuration and retry. ERR_TIMEOUT: the outcome is unknown (the write was
    prepared but this replica stopped being primary, or its deadline passed first)."""

    gpid: Gpid
    request_id: Hashable
    error: ErrorCode
    decree: int = 0
    results: tuple = ()


@dataclass(frozen=True, slots=True)
class ReplyRead:
    """Answer a follower read (``on_follower_read``). ``error`` ERR_OK: read the applied state now; it holds
    every write acknowledged before the read arrived. ERR_INVALID_STATE: this replica may not serve it (not a
    secondary, its primary refused, or the configuration changed): retry at the primary. ERR_TIMEOUT: no
    commit point came in time."""

    gpid: Gpid
    read_id: Hashable
    error: ErrorCode


@dataclass(frozen=True, slots=True)
class ReportToMeta:
    """Send this request to the meta server (``Guardian.handle_request`` decides it)."""

    request: ConfigChangeRequest


@dataclass(frozen=True, slots=True)
class LoadLearnState:
    """A learner needs decrees ``start_decree..end_decree`` that are no longer in memory. Read them from the
    WAL if it still holds them all; otherwise take the newest checkpoint (at decree D >= start_decree - 1)
    and the WAL after D up to ``end_decree``. Then call ``on_learn_state_loaded``. ``by_reference``: the learner
    fetches a checkpoint by name; otherwise (an older learner) the checkpoint goes as its bytes."""

    gpid: Gpid
    load_id: int
    learner: str
    start_decree: int
    end_decree: int
    by_reference: bool = True


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """Informational: the replica's role changed (for logs and metrics; INACTIVE may be closed)."""

    gpid: Gpid
    ballot: int
    old: PartitionStatus
    new: PartitionStatus


Effect = (PersistBallot | AppendLog | InstallCheckpoint | ApplyMutation | Send | ReplyClient | ReplyRead
          | ReportToMeta | LoadLearnState | StatusChanged)
