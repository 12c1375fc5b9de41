"""The side of PacificA that secondaries and learners (POTENTIAL_SECONDARY) share.

A follower's log may hold stale mutations beyond its commit point: ones an earlier primary prepared that
the current primary never had. So the follower tracks ``valid_end``: every decree up to it holds the
current primary's mutation. At the start of a ballot only the committed prefix is known valid. It grows by
- a prepare of decree ``valid_end + 1`` at the current ballot: if the log already holds the same proposal
  (a re-proposal), nothing is written; otherwise the mutation is appended under the current ballot, which
  supersedes the stale tail;
- for a secondary, the primary's commit point: by PacificA's commit invariant a secondary's log holds the
  primary's committed mutations, so every logged decree up to it is valid;
- for a learner, a learn response: the primary's log from the learner's commit point on.
Prepares that arrive out of order (or while learning) wait in a bounded buffer. Acknowledgements are
cumulative: "durable and valid up to d". Commits follow the primary's commit point, within ``valid_end``.

A learner that stops making progress while the primary is ahead of it (a lost prepare the primary no
longer holds in memory) learns again from its commit point.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from pegasus_node.replication.config import PartitionStatus
from pegasus_node.replication.effects import InstallCheckpoint, Send
from pegasus_node.replication.messages import GroupCheck, GroupCheckReply, LearnRequest, LearnResponse, Prepare, PrepareAck
from pegasus_node.replication.prepare_log import same_content
from pegasus_node.storage.mutation import Mutation

if TYPE_CHECKING:
    from pegasus_node.replication.core import ReplicaCore


class FollowerRole:
    def __init__(self, core: "ReplicaCore") -> None:
        self.core = core
        self.valid_end = core.committed
        self.buffer: dict[int, Mutation] = {}
        self.learning = False
        self.learn_id = 0
        self.learn_sent_at = -math.inf
        self.progress_at = -math.inf
        self.primary_last_prepared = 0
        self.acked_sent = -1

    @property
    def ack_point(self) -> int:
        return min(self.valid_end, self.core.log.durable_end)

    def start_ballot(self, now: float) -> list:
        core = self.core
        self.valid_end = core.committed
        self.buffer.clear()
        self.acked_sent = -1
        self.progress_at = now
        self.primary_last_prepared = 0
        self.learning = False
        if core.status is PartitionStatus.POTENTIAL_SECONDARY:
            return self._learn(now)
        return []

    # ----------------------------------------------------------------------------------------- prepares

    def on_prepare(self, now: float, prepare: Prepare) -> list:
        core = self.core
        effects: list = []
        self.primary_last_prepared = max(self.primary_last_prepared, prepare.mutation.decree)
        if core.status is PartitionStatus.SECONDARY:
            self._trust_primary_commit(now, prepare.committed)
        mutation = prepare.mutation
        if self.learning or mutation.decree > self.valid_end + 1:
            if mutation.decree <= self.valid_end + self.core.options.max_buffered_prepares:
                self.buffer[mutation.decree] = mutation
        elif mutation.decree == self.valid_end + 1:
            effects.extend(self._store(now, mutation))
        effects.extend(self._drain(now))
        if self.learning:
            return effects
        effects.extend(core.commit_to(min(prepare.committed, self.valid_end)))
        # A new mutation is acknowledged once it is durable (on_log_durable). Ack now only with news (the
        # commit point made more of the log valid), or when the primary re-sent something already durable
        # here: it never heard our ack.
        if self.ack_point > self.acked_sent or mutation.decree <= self.ack_point:
            effects.append(self._ack())
        return effects

    def _store(self, now: float, mutation: Mutation) -> list:
        core = self.core
        effects = []
        existing = core.log.get(mutation.decree)
        if existing is None or not same_content(existing, mutation):
            if mutation.ballot != core.ballot:  # logged under the ballot that accepted it
                mutation = dataclasses.replace(mutation, ballot=core.ballot)
            effects.append(core.log.append(mutation))
            core.last_timestamp_us = max(core.last_timestamp_us, mutation.timestamp_us)
        self.valid_end = mutation.decree
        self.progress_at = now
        return effects

    def _drain(self, now: float) -> list:
        effects: list = []
        if self.learning:
            return effects
        for decree in [d for d in self.buffer if d <= self.valid_end]:
            del self.buffer[decree]
        while self.valid_end + 1 in self.buffer:
            effects.extend(self._store(now, self.buffer.pop(self.valid_end + 1)))
        return effects

    def _trust_primary_commit(self, now: float, primary_committed: int) -> None:
        trusted = min(primary_committed, self.core.log.last)
        if trusted > self.valid_end:
            self.valid_end = trusted
            self.progress_at = now

    def _ack(self) -> Send:
        core = self.core
        self.acked_sent = self.ack_point
        return Send(core.config.primary, PrepareAck(core.gpid, core.ballot, core.address, self.acked_sent))

    def on_log_durable(self) -> list:
        if self.learning or self.ack_point <= self.acked_sent:
            return []
        return [self._ack()]

    # ----------------------------------------------------------------------------------------- group check

    def on_group_check(self, now: float, check: GroupCheck) -> list:
        core = self.core
        self.primary_last_prepared = max(self.primary_last_prepared, check.last_prepared)
        effects = self.on_primary_commit_point(now, check.committed)
        reply = GroupCheckReply(core.gpid, core.ballot, core.address, core.status, self.ack_point, self.learning)
        effects.append(Send(check.sender, reply))
        return effects

    def on_primary_commit_point(self, now: float, committed: int) -> list:
        """The current primary's commit point, from a group check or a read index reply."""
        core = self.core
        effects: list = []
        if not self.learning:
            if core.status is PartitionStatus.SECONDARY:
                self._trust_primary_commit(now, committed)
                effects.extend(self._drain(now))
            effects.extend(core.commit_to(min(committed, self.valid_end)))
        return effects

    # ----------------------------------------------------------------------------------------- learning

    def _learn(self, now: float) -> list:
        core = self.core
        self.learning = True
        self.learn_id += 1
        self.learn_sent_at = now
        request = LearnRequest(core.gpid, core.ballot, core.address, self.learn_id, core.committed, by_reference=True)
        return [Send(core.config.primary, request)]

    def on_learn_response(self, now: float, response: LearnResponse) -> list:
        core = self.core
        if not self.learning or response.learn_id != self.learn_id:
            return []
        effects: list = []
        if response.checkpoint is not None and response.checkpoint_decree > core.committed:
            effects.append(InstallCheckpoint(core.gpid, response.checkpoint_decree, response.checkpoint))
            effects.extend(core.reset_to_checkpoint(response.checkpoint_decree))
        base = core.committed
        learned = [m for m in response.mutations if m.decree > base]
        if any(m.decree != base + 1 + i for i, m in enumerate(learned)):
            return effects  # a gap: ask again at the next retry
        self.learning = False
        self.valid_end = base
        for mutation in learned:
            effects.extend(self._store(now, mutation))
        self.progress_at = now
        self.primary_last_prepared = max(self.primary_last_prepared, self.valid_end)
        effects.extend(self._drain(now))
        effects.extend(core.commit_to(min(response.committed, self.valid_end)))
        effects.extend(self.on_log_durable())
        if response.committed > self.valid_end:
            effects.extend(self._learn(now))  # the primary sent a part (max_learn_bytes): on with the rest
        return effects

    # ------------------------------------------------------------------------------------------- timers

    def tick(self, now: float) -> list:
        retry = self.core.options.learn_retry_seconds
        if self.core.status is not PartitionStatus.POTENTIAL_SECONDARY:
            return []
        if self.learning and now - self.learn_sent_at >= retry:
            return self._learn(now)
        if not self.learning and self.primary_last_prepared > self.valid_end and now - self.progress_at >= retry:
            return self._learn(now)  # stuck behind a gap the primary cannot fill from memory
        return []
