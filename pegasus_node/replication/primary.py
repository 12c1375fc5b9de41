"""The primary's side of PacificA, for one ballot.

- Writes: client writes queue in the ClientBook and are folded into mutations while fewer than
  ``max_inflight_mutations`` are prepared but uncommitted (and the server's lease is valid). Each mutation
  is appended to the primary's own log and sent to every secondary and learner.
- Commit: decree d commits once the primary's own log is durable up to d and every secondary (and every
  learner being upgraded, see below) has acknowledged d. Acknowledgements are cumulative and only count at
  the current ballot, so "acked >= d" means "holds my mutations for every decree up to d, durably".
- Reconciliation: on taking a ballot, the primary re-proposes every mutation it holds beyond its commit
  point under the new ballot. Reads wait until those are committed and applied (``reconcile_end``).
- Failure detection: a member that is silent for ``prepare_timeout_seconds``, or that leaves a prepared
  decree unacknowledged that long, is reported to the meta server for removal.
- Learners: served from memory, or from the WAL / a checkpoint through ``LoadLearnState``. A learner that
  acknowledges the commit point is "caught up": from then on its acknowledgements are required for commits
  too (so that at the moment the meta server makes it a secondary it provably holds every committed decree),
  and the primary asks the meta server to upgrade it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pegasus_node.replication.config import ConfigChangeRequest, RequestKind
from pegasus_node.replication.effects import LoadLearnState, ReportToMeta, Send
from pegasus_node.replication.messages import (
    GroupCheck,
    GroupCheckReply,
    LearnRequest,
    LearnResponse,
    Prepare,
    PrepareAck,
)
from pegasus_node.storage.mutation import Mutation

if TYPE_CHECKING:
    from pegasus_node.replication.core import ReplicaCore


@dataclass(slots=True)
class _Member:
    heard_at: float  # last message from it at this ballot
    progress_at: float  # last time its acknowledgement advanced, or it fell behind from caught up
    resent_at: float
    acked: int = 0
    acked_known: bool = False  # it acknowledged at this ballot (for a learner: it finished learning)


@dataclass(slots=True)
class _PendingLoad:
    learner: str
    learn_id: int
    start: int


class PrimaryRole:
    def __init__(self, core: "ReplicaCore") -> None:
        self.core = core
        self.members: dict[str, _Member] = {}
        self.upgrading: set[str] = set()
        self.reconcile_end = 0
        self.next_group_check = -math.inf
        self.meta_requests: dict[tuple[RequestKind, str], float] = {}
        self.loads: dict[int, _PendingLoad] = {}
        self._next_load_id = 0

    # ------------------------------------------------------------------------------------- ballot start

    def start_ballot(self, now: float) -> list:
        """The meta server made us primary at ``core.ballot`` (again, or for the first time)."""
        core = self.core
        config = core.config
        self.members = {a: _Member(now, now, now) for a in config.secondaries + config.learners}
        self.upgrading = set()
        self.meta_requests = {}
        self.loads = {}
        self.reconcile_end = core.log.last
        effects: list = []
        for decree in range(core.committed + 1, core.log.last + 1):
            effects.extend(self._prepare_to_all(core.log.get(decree)))
        self.next_group_check = -math.inf
        effects.extend(self._group_check(now))
        effects.extend(self.try_commit())
        effects.extend(self.pump(now))
        return effects

    # ------------------------------------------------------------------------------------------ writes

    def pump(self, now: float) -> list:
        """Turn queued client writes into mutations while the window and the lease allow."""
        core = self.core
        options = core.options
        effects: list = []
        while (core.clients.queue and now < core.lease_until
               and core.log.last - core.committed < options.max_inflight_mutations
               and (core.log.last == core.committed or len(core.clients.queue) >= options.min_batch_when_busy)):
            batch = core.clients.take_batch(options.max_batch_ops, options.max_batch_bytes)
            timestamp = max([core.last_timestamp_us + 1] + [w.timestamp_us for w in batch])
            writes = tuple(op for w in batch for op in w.writes)
            mutation = Mutation(core.ballot, core.log.last + 1, core.committed, timestamp, writes)
            core.last_timestamp_us = timestamp
            for member in self.members.values():
                if member.acked >= mutation.decree - 1:
                    member.progress_at = now  # it was caught up; the clock for this decree starts now
            effects.append(core.log.append(mutation))
            core.clients.attach(mutation.decree, batch)
            effects.extend(self._prepare_to_all(mutation))
        return effects

    def _prepare(self, to: str, mutation: Mutation) -> Send:
        core = self.core
        if mutation.ballot != core.ballot:
            mutation = dataclasses.replace(mutation, ballot=core.ballot)
        return Send(to, Prepare(core.gpid, core.ballot, core.address, core.config, mutation, core.committed))

    def _prepare_to_all(self, mutation: Mutation) -> list:
        return [self._prepare(to, mutation) for to in self.members]

    # ------------------------------------------------------------------------------------------ commit

    def try_commit(self) -> list:
        core = self.core
        target = min(core.log.durable_end, core.log.last)
        for address in core.config.secondaries + tuple(self.upgrading):
            member = self.members[address]
            target = min(target, member.acked if member.acked_known else core.committed)
        if target <= core.committed:
            return []
        return core.commit_to(target)

    @property
    def reconciled(self) -> bool:
        return self.core.committed >= self.reconcile_end and self.core.applied >= self.reconcile_end

    # ----------------------------------------------------------------------------------------- messages

    def on_prepare_ack(self, now: float, ack: PrepareAck) -> list:
        return self._acknowledged(now, ack.sender, ack.acked)

    def on_group_check_reply(self, now: float, reply: GroupCheckReply) -> list:
        member = self.members.get(reply.sender)
        if member is None:
            return []
        member.heard_at = now
        if reply.learning:
            return []
        return self._acknowledged(now, reply.sender, reply.acked)

    def _acknowledged(self, now: float, sender: str, acked: int) -> list:
        member = self.members.get(sender)
        if member is None:
            return []
        member.heard_at = now
        if not member.acked_known or acked > member.acked:
            member.progress_at = now
        # taken as reported, even when lower: a restarted member really holds less, and must be resent it
        member.acked = acked
        member.acked_known = True
        effects = self.try_commit()
        # Caught up = holds everything that may be committed: up to our commit point, and, while we are still
        # reconciling, up to what we re-propose (a previous primary may have committed all of it).
        caught_up = acked >= max(self.core.committed, self.reconcile_end)
        if sender in self.core.config.learners and sender not in self.upgrading and caught_up:
            self.upgrading.add(sender)
            effects.extend(self._ask_meta(now, RequestKind.UPGRADE, sender))
        if effects:
            effects.extend(self.pump(now))
        return effects

    # ------------------------------------------------------------------------------------------- timers

    def tick(self, now: float) -> list:
        core = self.core
        options = core.options
        effects: list = []
        if now >= self.next_group_check:
            effects.extend(self._group_check(now))
        for address, member in self.members.items():
            learning = address in core.config.learners and not member.acked_known
            base = member.acked if member.acked_known else core.committed
            behind = not learning and base < core.log.last
            if behind and base >= core.log.floor and now - member.resent_at >= options.prepare_retry_seconds:
                member.resent_at = now
                upto = min(core.log.last, base + options.max_inflight_mutations)
                effects.extend(self._prepare(address, m) for m in core.log.range(base + 1, upto))
            silent = now - member.heard_at > options.prepare_timeout_seconds
            stuck = behind and now - member.progress_at > options.prepare_timeout_seconds
            if silent or stuck:
                effects.extend(self._ask_meta(now, RequestKind.REMOVE, address))
        for address in sorted(self.upgrading):
            effects.extend(self._ask_meta(now, RequestKind.UPGRADE, address))
        effects.extend(self.pump(now))
        return effects

    def _group_check(self, now: float) -> list:
        core = self.core
        self.next_group_check = now + core.options.group_check_seconds
        check = GroupCheck(core.gpid, core.ballot, core.address, core.config, core.committed, core.log.last)
        return [Send(to, check) for to in self.members]

    def _ask_meta(self, now: float, kind: RequestKind, node: str) -> list:
        """Ask the meta server for a change, again every ``meta_request_retry_seconds`` until the ballot
        moves (a new ballot starts a new PrimaryRole state)."""
        sent = self.meta_requests.get((kind, node))
        if sent is not None and now - sent < self.core.options.meta_request_retry_seconds:
            return []
        self.meta_requests[(kind, node)] = now
        core = self.core
        return [ReportToMeta(ConfigChangeRequest(core.gpid, core.ballot, kind, node, core.address))]

    # ----------------------------------------------------------------------------------------- learning

    def on_learn_request(self, now: float, request: LearnRequest) -> list:
        core = self.core
        member = self.members.get(request.sender)
        if member is None or request.sender not in core.config.learners:
            return []
        member.heard_at = now
        # learning again: its acknowledgements restart after this round. If it is being upgraded it stays
        # required for commits (the meta server may already be making it a secondary), so commits wait.
        member.acked_known = False
        start = min(request.committed + 1, core.log.last + 1)
        if start > core.log.floor:
            tail = core.log.range(start, core.log.last)
            return [self._learn_response(request.sender, request.learn_id, None, 0, tail)]
        self._next_load_id += 1
        self.loads[self._next_load_id] = _PendingLoad(request.sender, request.learn_id, start)
        return [LoadLearnState(core.gpid, self._next_load_id, request.sender, start, core.log.floor,
                               request.by_reference)]

    def on_learn_state_loaded(self, load_id: int, checkpoint_decree: int, checkpoint: object,
                              mutations: list[Mutation]) -> list:
        core = self.core
        load = self.loads.pop(load_id, None)
        if load is None or load.learner not in core.config.learners:
            return []
        base = checkpoint_decree if checkpoint is not None else load.start - 1
        loaded = [m for m in mutations if m.decree > base]
        if any(m.decree != base + 1 + i for i, m in enumerate(loaded)):
            return []  # not contiguous: the learner asks again
        tail = core.log.range((loaded[-1].decree if loaded else base) + 1, core.log.last)
        if tail is None:
            # Memory moved on while the WAL was read. Under steady writes it always does, so dropping the
            # answer would leave the learner asking forever: it gets what was loaded and asks again from there.
            if not loaded:
                return []
            tail = []
        return [self._learn_response(load.learner, load.learn_id, checkpoint, checkpoint_decree, loaded + tail)]

    def _learn_response(self, to: str, learn_id: int, checkpoint: object, checkpoint_decree: int,
                        mutations: list[Mutation]) -> Send:
        core = self.core
        budget = core.options.max_learn_bytes - (len(checkpoint) if isinstance(checkpoint, (bytes, bytearray)) else 0)
        response = LearnResponse(core.gpid, core.ballot, core.address, core.config, learn_id, core.committed,
                                 checkpoint_decree, checkpoint, _prefix_within(mutations, budget))
        return Send(to, response)


def _prefix_within(mutations: list[Mutation], budget: int) -> tuple[Mutation, ...]:
    """The longest prefix whose encoded size fits ``budget`` (at least one mutation, so learning advances)."""
    size = 0
    for count, mutation in enumerate(mutations):
        size += len(mutation.encode())
        if size > budget and count > 0:
            return tuple(mutations[:count])
    return tuple(mutations)
