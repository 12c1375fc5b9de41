"""Linearizable reads served by a secondary (DESIGN rule 7; seed 003's ReadIndex, as TiKV's follower read).

A secondary's applied state lags its primary's: it learns the commit point only from the next prepare or
group check. So a follower read waits for the primary's word:

1. the reads that arrive while no request is out go to the primary as one ``ReadIndexRequest`` (``flush``, at
   the end of the edge's turn); those that arrive while one is out wait for its answer, then go together in
   the next. One request at a time batches by itself, the more the busier the partition (BENCHMARKS.md has
   the figures);
2. the primary answers with its commit point, and only while it serves with a valid lease and has
   reconciled. With the lease it is the one primary: an old primary's lease ends before the meta server
   appoints a new one;
3. the secondary takes that commit point as the primary's (as from a group check), and the batch's reads
   are served (``ReplyRead`` ERR_OK) once its applied decree reaches it.

Why that is linearizable: the primary acknowledges a write only after committing and applying it, so the
commit point it sends covers every write acknowledged before the read arrived; the state read is at or
beyond that point and holds only committed writes, which every later primary holds too.

A read gives up at its deadline (ERR_TIMEOUT), and on any change of this replica's configuration or role
(ERR_INVALID_STATE): the client then asks the primary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Hashable

from pegasus_node.errors import ErrorCode
from pegasus_node.replication.config import PartitionStatus
from pegasus_node.replication.effects import ReplyRead, Send
from pegasus_node.replication.messages import ReadIndexReply, ReadIndexRequest

if TYPE_CHECKING:
    from pegasus_node.replication.core import ReplicaCore


@dataclass(slots=True)
class _Read:
    read_id: Hashable
    deadline: float


class FollowerReads:
    def __init__(self, core: "ReplicaCore") -> None:
        self.core = core
        self.unsent: list[_Read] = []  # arrived since the last request
        self.asked: dict[int, list[_Read]] = {}  # request id -> its reads, waiting for the primary's answer
        self.waiting: list[tuple[int, _Read]] = []  # (the primary's commit point, read): waiting for the apply
        self.last_request_id = 0

    @property
    def pending(self) -> int:
        return len(self.unsent) + sum(len(reads) for reads in self.asked.values()) + len(self.waiting)

    def add(self, now: float, read_id: Hashable, deadline: float) -> list:
        core = self.core
        if core.status is PartitionStatus.PRIMARY:  # the primary's own state is the one to read
            return [ReplyRead(core.gpid, read_id, core.check_read(now))]
        if core.status is not PartitionStatus.SECONDARY:  # a learner may be far behind, and may install a checkpoint
            return [ReplyRead(core.gpid, read_id, ErrorCode.ERR_INVALID_STATE)]
        self.unsent.append(_Read(read_id, deadline))
        return []

    def flush(self) -> list:
        """One request to the primary for every read that arrived since the last one, unless one is out."""
        if not self.unsent or self.asked:
            return []
        core = self.core
        reads, self.unsent = self.unsent, []
        self.last_request_id += 1
        self.asked[self.last_request_id] = reads
        return [Send(core.config.primary, ReadIndexRequest(core.gpid, core.ballot, core.address, self.last_request_id))]

    def on_reply(self, now: float, reply: ReadIndexReply) -> list:
        reads = self.asked.pop(reply.request_id, None)
        if reads is None:
            return []  # answered already, or failed by a change of configuration
        core = self.core
        if (reply.error != ErrorCode.ERR_OK or reply.ballot != core.ballot or reply.sender != core.config.primary
                or core.status is not PartitionStatus.SECONDARY):
            error = ErrorCode.ERR_INVALID_STATE if reply.error == ErrorCode.ERR_OK else reply.error
            return [ReplyRead(core.gpid, read.read_id, error) for read in reads] + self.flush()
        effects = core.follower.on_primary_commit_point(now, reply.committed)
        self.waiting.extend((reply.committed, read) for read in reads)
        effects.extend(self.release())
        effects.extend(self.flush())  # the reads that arrived meanwhile
        return effects

    def release(self) -> list:
        """Serve the reads whose commit point the applied state has reached (called after every apply)."""
        if not self.waiting:
            return []
        applied = self.core.applied
        ready = [read for index, read in self.waiting if index <= applied]
        if not ready:
            return []
        self.waiting = [(index, read) for index, read in self.waiting if index > applied]
        return [ReplyRead(self.core.gpid, read.read_id, ErrorCode.ERR_OK) for read in ready]

    def expire(self, now: float) -> list:
        if not (self.unsent or self.asked or self.waiting):
            return []
        expired = [read for read in self.unsent if now >= read.deadline]
        self.unsent = [read for read in self.unsent if now < read.deadline]
        for request_id, reads in list(self.asked.items()):
            expired.extend(read for read in reads if now >= read.deadline)
            kept = [read for read in reads if now < read.deadline]
            if kept:
                self.asked[request_id] = kept
            else:
                del self.asked[request_id]
        expired.extend(read for _, read in self.waiting if now >= read.deadline)
        self.waiting = [(index, read) for index, read in self.waiting if now < read.deadline]
        # A request whose reads all expired is given up (it or its answer was lost): the next one may go.
        return [ReplyRead(self.core.gpid, read.read_id, ErrorCode.ERR_TIMEOUT) for read in expired] + self.flush()

    def fail_all(self, error: ErrorCode) -> list:
        reads = self.unsent + [read for reads in self.asked.values() for read in reads] + [r for _, r in self.waiting]
        self.unsent, self.asked, self.waiting = [], {}, []
        return [ReplyRead(self.core.gpid, read.read_id, error) for read in reads]


def answer_read_index(core: "ReplicaCore", now: float, request: ReadIndexRequest) -> list:
    """The primary's side: its commit point, if it may serve reads now and the asker is its secondary."""
    config = core.config
    if (request.ballot == core.ballot and core.primary is not None and config is not None
            and request.sender in config.secondaries):
        error = core.check_read(now)
    else:
        error = ErrorCode.ERR_INVALID_STATE
    committed = core.committed if error == ErrorCode.ERR_OK else 0
    return [Send(request.sender, ReadIndexReply(core.gpid, core.ballot, core.address, request.request_id, committed,
                                                error))]
