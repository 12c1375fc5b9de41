"""``ReplicaCore``: one partition replica's PacificA state machine, sans I/O.

Every public ``on_*`` method takes the current time and returns a list of effects (effects.py) for the
edge to carry out in order. Nothing here reads a clock, draws a random number or touches a file or socket.
See the package docstring for the event/effect contract and the message flow.
"""

from __future__ import annotations

import math
from typing import Hashable, Iterable

import msgpack

from pegasus_node.errors import ErrorCode
from pegasus_node.replication.client_book import ClientBook, QueuedWrite
from pegasus_node.replication.config import (
    Gpid,
    PartitionConfiguration,
    PartitionStatus,
    ReplicaReport,
    ReplicationOptions,
)
from pegasus_node.replication.effects import (
    ApplyMutation,
    PersistBallot,
    ReplyClient,
    Send,
    StatusChanged,
)
from pegasus_node.replication.follower import FollowerRole
from pegasus_node.replication.follower_reads import FollowerReads, answer_read_index
from pegasus_node.replication.messages import (
    GroupCheck,
    GroupCheckReply,
    LearnRequest,
    LearnResponse,
    Message,
    Prepare,
    PrepareAck,
    ReadIndexReply,
    ReadIndexRequest,
    StaleBallot,
)
from pegasus_node.replication.prepare_log import PrepareLog
from pegasus_node.replication.primary import PrimaryRole
from pegasus_node.storage.mutation import Mutation

_FROM_PRIMARY = (Prepare, GroupCheck, LearnResponse)
_TO_PRIMARY = (PrepareAck, GroupCheckReply, LearnRequest)
_FOLLOWING = (PartitionStatus.SECONDARY, PartitionStatus.POTENTIAL_SECONDARY)


class ReplicaCore:
    """Create one per hosted partition replica, from what the edge recovered from disk, then call
    ``start(now)`` and carry out its effects (the applies of committed decrees not yet in the state).

    ``ballot``: the last ``PersistBallot`` (0 for a new replica). ``checkpoint_decree``: the decree the
    storage state was loaded at. ``log``: the WAL's mutations after it, contiguous, in decree order.
    ``applied_decree``: what the storage state already reflects (default: ``checkpoint_decree``).
    A recovered replica is INACTIVE until a configuration arrives.
    """

    def __init__(self, address: str, gpid: Gpid, options: ReplicationOptions | None = None, *, ballot: int = 0,
                 checkpoint_decree: int = 0, log: Iterable[Mutation] = (), applied_decree: int | None = None) -> None:
        self.address = address
        self.gpid = gpid
        self.options = options or ReplicationOptions()
        self.ballot = ballot
        self.config: PartitionConfiguration | None = None
        self.status = PartitionStatus.INACTIVE
        log = list(log)
        self.log = PrepareLog(gpid, checkpoint_decree, log)
        applied = checkpoint_decree if applied_decree is None else applied_decree
        if not checkpoint_decree <= applied <= self.log.last:
            raise ValueError(f"replica {gpid}: applied decree {applied} is outside the recovered log "
                             f"({checkpoint_decree}..{self.log.last})")
        # every mutation carries the commit point its primary had: those decrees are certainly committed
        known = max((m.last_committed for m in log), default=0)
        self.committed = max(applied, min(known, self.log.last))
        self.applied = applied
        self.apply_requested = applied
        self.lease_until = -math.inf
        self.last_timestamp_us = self.log.last_timestamp_us
        self.clients = ClientBook(gpid)
        self.primary: PrimaryRole | None = None
        self.follower = FollowerRole(self)
        self.reads = FollowerReads(self)
        self.error_reason = ""

    # ------------------------------------------------------------------------------------------ queries

    def report(self) -> ReplicaReport:
        return ReplicaReport(self.gpid, self.ballot, self.status, self.committed, self.log.durable_end)

    def is_serving(self, now: float) -> bool:
        """Primary with a valid lease: may accept writes now."""
        return self.status is PartitionStatus.PRIMARY and now < self.lease_until

    def check_read(self, now: float) -> ErrorCode:
        """May this replica serve a strongly consistent read from its applied state right now?"""
        if not self.is_serving(now):
            return ErrorCode.ERR_INVALID_STATE
        if not self.primary.reconciled:
            return ErrorCode.ERR_INVALID_STATE  # still re-proposing what the previous primary left
        return ErrorCode.ERR_OK

    # ------------------------------------------------------------------------------------------- events

    def start(self, now: float) -> list:
        """Apply what the recovered log shows committed beyond the storage state."""
        return self._emit_applies()

    def on_config(self, now: float, config: PartitionConfiguration) -> list:
        """A configuration from the meta server (or carried by a peer's message)."""
        if config.gpid != self.gpid:
            raise ValueError(f"replica {self.gpid} got the configuration of partition {config.gpid}")
        if self.status is PartitionStatus.ERROR or config.ballot < self.ballot:
            return []
        if config.ballot == self.ballot:
            if self.config is not None:
                return []
            # restarted at the ballot it had accepted: it may rejoin as secondary or learner, but never as
            # primary, since it may have proposed mutations at this ballot that it lost (meta sees it INACTIVE)
            return self._adopt(now, config, persist=False, may_lead=False)
        return self._adopt(now, config, persist=True, may_lead=True)

    def on_lease(self, now: float, lease_until: float) -> list:
        """The replica server's lease (from the send time of its last acknowledged beacon) now ends at
        ``lease_until``."""
        self.lease_until = lease_until
        if self.primary is not None:
            return self.primary.pump(now)
        return []

    def on_client_write(self, now: float, request_id: Hashable, writes: list | tuple, *,
                        timestamp_us: int | None = None, deadline: float | None = None, flush: bool = True) -> list:
        """A client write: storage op dicts, applied atomically in one mutation. ``timestamp_us``: the
        wall clock for timetags (default ``now``). With ``flush=False`` the write only queues, so that an
        edge can fold everything that arrived in one reactor turn into one mutation, then call ``flush``."""
        if not self.is_serving(now):
            return [ReplyClient(self.gpid, request_id, ErrorCode.ERR_INVALID_STATE)]
        if not isinstance(writes, (list, tuple)) or not writes or not all(isinstance(w, dict) for w in writes):
            return [ReplyClient(self.gpid, request_id, ErrorCode.ERR_INVALID_PARAMETERS)]
        try:
            size = len(msgpack.packb(list(writes), use_bin_type=True))
        except (TypeError, ValueError, OverflowError):
            return [ReplyClient(self.gpid, request_id, ErrorCode.ERR_INVALID_PARAMETERS)]
        stamp = int(now * 1_000_000) if timestamp_us is None else timestamp_us
        self.clients.queue.append(QueuedWrite(request_id, tuple(writes), size, stamp, deadline))
        return self.flush(now) if flush else []

    def flush(self, now: float) -> list:
        """End of the edge's turn: the queued client writes become mutations, the follower reads one request."""
        effects = self.primary.pump(now) if self.primary is not None else []
        if self.reads.unsent:
            effects.extend(self.reads.flush())
        return effects

    def on_follower_read(self, now: float, read_id: Hashable, *, deadline: float | None = None,
                         flush: bool = True) -> list:
        """A client read sent to this replica as a follower read (follower_reads.py). The answer is a ``ReplyRead``
        effect, now or later; on ERR_OK the edge reads its applied state at once. With ``flush=False`` the read
        waits for ``flush``, so that the reads of one reactor turn share one request to the primary."""
        if deadline is None:
            deadline = now + self.options.follower_read_timeout_seconds
        effects = self.reads.add(now, read_id, deadline)
        if flush:
            effects.extend(self.flush(now))
        return effects

    def on_log_durable(self, now: float, seq: int) -> list:
        if not self.log.mark_durable(seq):
            return []
        if self.primary is not None:
            return self.primary.try_commit() + self.primary.pump(now)
        if self.status in _FOLLOWING:
            return self.follower.on_log_durable()
        return []

    def on_apply_finished(self, now: float, decree: int, results: list | tuple) -> list:
        if decree != self.applied + 1:
            return []  # a late answer for a state a checkpoint install replaced
        self.applied = decree
        replies = self.clients.applied(decree, results)
        self.log.forget_upto(self.applied - self.options.keep_committed_mutations)
        if self.reads.waiting:
            replies.extend(self.reads.release())
        return replies

    def on_learn_state_loaded(self, now: float, load_id: int, checkpoint_decree: int, checkpoint: object,
                              mutations: list[Mutation]) -> list:
        if self.primary is None:
            return []
        return self.primary.on_learn_state_loaded(load_id, checkpoint_decree, checkpoint, list(mutations))

    def on_tick(self, now: float) -> list:
        """Call regularly (every ~0.1 s): group checks, retries, timeouts, learning retries."""
        effects = self.clients.expire(now)
        effects.extend(self.reads.expire(now))
        if self.primary is not None:
            effects.extend(self.primary.tick(now))
        elif self.status in _FOLLOWING:
            effects.extend(self.follower.tick(now))
        return effects

    def on_local_error(self, now: float, reason: str) -> list:
        """Storage failed under this replica (e.g. an fsync error): it stops taking part until restarted."""
        if self.status is PartitionStatus.ERROR:
            return []
        old, self.status, self.error_reason = self.status, PartitionStatus.ERROR, reason
        self.primary = None
        return (self.clients.fail_all() + self.reads.fail_all(ErrorCode.ERR_INVALID_STATE)
                + [StatusChanged(self.gpid, self.ballot, old, self.status)])

    def on_message(self, now: float, message: Message) -> list:
        if message.gpid != self.gpid:
            raise ValueError(f"replica {self.gpid} got a message for partition {message.gpid}")
        if self.status is PartitionStatus.ERROR:
            return []
        if isinstance(message, StaleBallot):
            return self.on_config(now, message.config)
        if isinstance(message, ReadIndexRequest):
            effects = answer_read_index(self, now, message)
            if message.ballot < self.ballot and self.config is not None:
                effects.append(Send(message.sender, StaleBallot(self.gpid, self.ballot, self.address, self.config)))
            return effects
        if message.ballot < self.ballot:
            if self.config is None:
                return []
            return [Send(message.sender, StaleBallot(self.gpid, self.ballot, self.address, self.config))]
        if isinstance(message, _FROM_PRIMARY):
            return self._from_primary(now, message)
        if isinstance(message, ReadIndexReply):
            return self.reads.on_reply(now, message)
        if message.ballot > self.ballot or self.primary is None:
            return []  # our next message to the sender gets a StaleBallot back, with the new config
        if isinstance(message, PrepareAck):
            return self.primary.on_prepare_ack(now, message)
        if isinstance(message, GroupCheckReply):
            return self.primary.on_group_check_reply(now, message)
        if isinstance(message, LearnRequest):
            return self.primary.on_learn_request(now, message)
        raise TypeError(f"not a replication message: {type(message).__name__}")

    def _from_primary(self, now: float, message: Prepare | GroupCheck | LearnResponse) -> list:
        effects: list = []
        if message.ballot > self.ballot or self.config is None:
            if message.config.ballot != message.ballot:
                return []
            effects = self.on_config(now, message.config)
        if message.ballot != self.ballot or message.sender != self.config.primary or self.status not in _FOLLOWING:
            return effects
        if isinstance(message, Prepare):
            effects.extend(self.follower.on_prepare(now, message))
        elif isinstance(message, GroupCheck):
            effects.extend(self.follower.on_group_check(now, message))
        else:
            effects.extend(self.follower.on_learn_response(now, message))
        return effects

    # ----------------------------------------------------------------------------- shared by the roles

    def commit_to(self, decree: int) -> list:
        """Advance the commit point (never backwards) and apply what it newly covers."""
        if decree <= self.committed:
            return []
        self.committed = min(decree, self.log.last)
        return self._emit_applies()

    def _emit_applies(self) -> list:
        effects = []
        while self.apply_requested < self.committed:
            self.apply_requested += 1
            mutation = self.log.get(self.apply_requested)
            if mutation is None:
                raise AssertionError(f"replica {self.gpid}: committed decree {self.apply_requested} is not in memory")
            effects.append(ApplyMutation(self.gpid, mutation))
        return effects

    def reset_to_checkpoint(self, decree: int) -> list:
        """A learner installed a checkpoint at ``decree``. Writes it still owed an answer from its time as
        primary will never be applied here: their outcome is unknown to this replica."""
        self.log.reset(decree)
        self.committed = self.applied = self.apply_requested = decree
        self.follower.valid_end = decree
        return self.clients.fail_all()

    def _adopt(self, now: float, config: PartitionConfiguration, *, persist: bool, may_lead: bool) -> list:
        effects: list = [PersistBallot(self.gpid, config.ballot)] if persist else []
        # Follower reads asked under the old configuration are answered no more (the client asks the primary).
        effects.extend(self.reads.fail_all(ErrorCode.ERR_INVALID_STATE))
        old = self.status
        self.ballot = config.ballot
        self.config = config
        role = config.role_of(self.address)
        if role is PartitionStatus.PRIMARY and not may_lead:
            role = PartitionStatus.INACTIVE
        if self.primary is not None and role is not PartitionStatus.PRIMARY:
            self.primary = None
            effects.extend(self.clients.step_down(self.committed))
        self.status = role
        if old is not role:
            effects.append(StatusChanged(self.gpid, self.ballot, old, role))
        if role is PartitionStatus.PRIMARY:
            if self.primary is None:
                self.primary = PrimaryRole(self)
            effects.extend(self.primary.start_ballot(now))
        elif role in _FOLLOWING:
            effects.extend(self.follower.start_ballot(now))
        return effects
