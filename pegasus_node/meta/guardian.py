"""The meta server's configuration decisions, pure: given what it knows, which configurations to change.

The caller (the meta server) builds a ``ClusterView`` from its stored configurations, its failure detector
(``pegasus_node.replication.lease.FailureDetector``: alive = beacon within ``grace``), the latest replica
reports from beacons (keep the newest by send time) and its meta level. ``propose(view)`` returns at most
one ``Proposal`` per partition, each with ballot + 1; ``handle_request(view, request)`` answers a primary's
``ConfigChangeRequest``. For each proposal the caller PERSISTS ``proposal.new`` first, then announces it (in
beacon replies, and by pushing it to the servers in ``old.everyone + new.everyone``).

Rules, per partition:
1. The primary is lost (its server is not alive, or its replica reports ERROR, or reports INACTIVE at the
   current ballot: it restarted and may not lead at a ballot it might have used) -> promote the best
   secondary (alive, reporting the replica). The dead or broken members are dropped in the same change.
   If no secondary is alive, and the old primary's server is back holding the replica, it is re-elected
   (ballot + 1): it holds every committed decree durably. Nothing else is ever promoted.
2. No primary (after a balancer move) -> promote a secondary once every alive secondary has reported the
   current ballot (so the old primary, now a secondary, has provably stopped leading).
3. A secondary or learner that is not alive, or reports ERROR -> remove it.
4. Fewer members than the replica count -> add one learner on an alive server (one at a time).
5. More members than the replica count (a balancer copy finished) -> remove the secondary on the most
   loaded server.
6. On the primary's request: remove a member it found unresponsive; upgrade a learner it found caught up.
7. Level ``lively``, everything healthy -> balance (balancer.py), one move per call.

Levels (Pegasus's meta_function_level): ``freezed`` only replaces lost primaries (rule 1) and ignores
requests; ``steady`` does rules 1-6; ``lively`` adds balancing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

from pegasus_node.meta.balancer import primary_load, propose_balance, replica_load
from pegasus_node.replication.config import (
    ConfigChangeRequest,
    Gpid,
    PartitionConfiguration,
    PartitionStatus,
    ReplicaReport,
    RequestKind,
)


class MetaLevel(str, enum.Enum):
    FREEZED = "freezed"
    STEADY = "steady"
    LIVELY = "lively"


@dataclass(frozen=True)
class ClusterView:
    configs: Mapping[Gpid, PartitionConfiguration]
    replica_count: Mapping[int, int]  # app_id -> how many replicas each partition should have
    alive: frozenset[str]
    reports: Mapping[str, Mapping[Gpid, ReplicaReport]] = field(default_factory=dict)
    level: MetaLevel = MetaLevel.STEADY

    def report(self, node: str, gpid: Gpid) -> ReplicaReport | None:
        return self.reports.get(node, {}).get(gpid)

    def broken(self, node: str, gpid: Gpid) -> bool:
        report = self.report(node, gpid)
        return report is not None and report.status is PartitionStatus.ERROR

    def holds(self, node: str, gpid: Gpid) -> bool:
        """Alive, and reporting a working replica of the partition."""
        report = self.report(node, gpid)
        return node in self.alive and report is not None and report.status is not PartitionStatus.ERROR


@dataclass(frozen=True)
class Proposal:
    old: PartitionConfiguration
    new: PartitionConfiguration
    reason: str


def _change(config: PartitionConfiguration, reason: str, **changes: object) -> Proposal:
    return Proposal(config, replace(config, ballot=config.ballot + 1, **changes), reason)


def _best_candidate(view: ClusterView, gpid: Gpid, candidates: Iterable[str]) -> str | None:
    """The candidate that leads fewest partitions, then the most up to date, then by address."""
    primaries = primary_load(view.configs.values(), view.alive)

    def rank(node: str) -> tuple:
        report = view.report(node, gpid)
        return (primaries.get(node, 0), -(report.last_committed_decree if report else 0), node)

    return min(candidates, key=rank, default=None)


def _promote(view: ClusterView, config: PartitionConfiguration) -> Proposal | None:
    gpid = config.gpid
    candidates = [s for s in config.secondaries if view.holds(s, gpid)]
    best = _best_candidate(view, gpid, candidates)
    keep_learners = tuple(n for n in config.learners if n in view.alive and not view.broken(n, gpid))
    if best is not None:
        others = tuple(s for s in config.secondaries if s != best and s in view.alive and not view.broken(s, gpid))
        return _change(config, f"promote secondary {best}", primary=best, secondaries=others, learners=keep_learners)
    old = config.primary
    if old and not any(s in view.alive for s in config.secondaries) and view.holds(old, gpid):
        return _change(config, f"re-elect {old}, the last replica", secondaries=(), learners=keep_learners)
    return None


def _primary_lost(view: ClusterView, config: PartitionConfiguration) -> bool:
    primary = config.primary
    if primary not in view.alive:
        return True
    report = view.report(primary, config.gpid)
    if report is None or report.ballot < config.ballot:
        return False  # it has not reported this ballot yet
    return report.status is not PartitionStatus.PRIMARY


def _cure(view: ClusterView, config: PartitionConfiguration) -> Proposal | None:
    gpid = config.gpid
    if config.primary and _primary_lost(view, config):
        return _promote(view, config)
    if view.level is MetaLevel.FREEZED:
        return None
    if not config.primary:
        alive = [s for s in config.secondaries if s in view.alive]
        reported = all((r := view.report(s, gpid)) is not None and r.ballot >= config.ballot for s in alive)
        return _promote(view, config) if reported else None
    gone = [n for n in config.secondaries + config.learners if n not in view.alive or view.broken(n, gpid)]
    if gone:
        return _change(config, f"remove {', '.join(gone)} (not alive or broken)",
                       secondaries=tuple(s for s in config.secondaries if s not in gone),
                       learners=tuple(n for n in config.learners if n not in gone))
    wanted = view.replica_count.get(gpid[0], len(config.members))
    if len(config.members) < wanted and not config.learners:
        node = _learner_target(view, config)
        return _change(config, f"add learner {node}", learners=(node,)) if node else None
    if len(config.members) > wanted and not config.learners and config.secondaries:
        load = replica_load(view.configs.values(), view.alive)
        victim = max(config.secondaries, key=lambda n: (load.get(n, 0), n))
        return _change(config, f"remove surplus secondary {victim}",
                       secondaries=tuple(s for s in config.secondaries if s != victim))
    return None


def _learner_target(view: ClusterView, config: PartitionConfiguration) -> str | None:
    """An alive server outside the partition: one already holding a copy (it learns less), else the one
    with the fewest replicas."""
    load = replica_load(view.configs.values(), view.alive)
    candidates = [n for n in view.alive if n not in config.everyone and not view.broken(n, config.gpid)]
    if not candidates:
        return None
    return min(candidates, key=lambda n: (view.report(n, config.gpid) is None, load.get(n, 0), n))


def propose(view: ClusterView) -> list[Proposal]:
    """Configuration changes to make now (each ballot + 1; at most one per partition)."""
    proposals = []
    for gpid in sorted(view.configs):
        proposal = _cure(view, view.configs[gpid])
        if proposal is not None:
            proposals.append(proposal)
    if view.level is MetaLevel.LIVELY and not proposals and _healthy(view):
        move = propose_balance(view.configs.values(), view.alive)
        if move is not None:
            config, changes, reason = move
            proposals.append(_change(config, reason, **changes))
    return proposals


def _healthy(view: ClusterView) -> bool:
    for gpid, config in view.configs.items():
        wanted = view.replica_count.get(gpid[0], len(config.members))
        if (not config.primary or config.learners or len(config.members) != wanted
                or any(n not in view.alive for n in config.members)):
            return False
    return True


def handle_request(view: ClusterView, request: ConfigChangeRequest) -> Proposal | None:
    """A primary's request. Refused (None) unless it comes from the current primary at the current ballot."""
    config = view.configs.get(request.gpid)
    if (config is None or view.level is MetaLevel.FREEZED or request.ballot != config.ballot
            or request.reporter != config.primary):
        return None
    node = request.node
    if request.kind is RequestKind.REMOVE and node in config.secondaries + config.learners:
        return _change(config, f"remove {node} at the primary's request",
                       secondaries=tuple(s for s in config.secondaries if s != node),
                       learners=tuple(n for n in config.learners if n != node))
    if request.kind is RequestKind.UPGRADE and node in config.learners:
        return _change(config, f"upgrade learner {node} to secondary", secondaries=config.secondaries + (node,),
                       learners=tuple(n for n in config.learners if n != node))
    return None


def assignments_for(node: str, configs: Iterable[PartitionConfiguration],
                    reported: Iterable[Gpid] = ()) -> list[PartitionConfiguration]:
    """The configurations to send a server in its beacon reply: those it belongs to, and those it reported a
    replica of (so that a replica dropped from its partition learns it and stops)."""
    reported = set(reported)
    return [c for c in configs if node in c.everyone or c.gpid in reported]
