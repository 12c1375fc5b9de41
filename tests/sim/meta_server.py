"""A simulated meta server around the real guardian and failure detector.

It never crashes (its state store is assumed durable and available: the real one is a file or ZooKeeper).
It keeps the newest replica reports per server (by beacon send time), runs the guardian periodically and on
every request from a primary, "persists" each proposal (a dict assignment, checked by the invariants
first), then announces it: pushes to the servers involved, and in every beacon reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pegasus_node.meta.guardian import ClusterView, MetaLevel, Proposal, assignments_for, handle_request, propose
from pegasus_node.replication.config import ConfigChangeRequest, PartitionConfiguration, ReplicaReport
from pegasus_node.replication.lease import FailureDetector

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation

META = "meta"


class SimMetaServer:
    def __init__(self, sim: "Simulation", configs: dict[tuple, PartitionConfiguration], replica_count: int,
                 level: MetaLevel) -> None:
        self.sim = sim
        self.world = sim.world
        self.configs = dict(configs)
        self.replica_count = {gpid[0]: replica_count for gpid in configs}
        self.level = level
        self.detector = FailureDetector(sim.params.grace)
        self.reports: dict[str, tuple[float, dict]] = {}
        self.changes = 0
        for server in sim.servers:
            self.detector.expect(server, 0.0)
        sim.network.register(META, self._on_packet)
        self._guard_loop()

    def view(self) -> ClusterView:
        reports = {node: by_gpid for node, (_, by_gpid) in self.reports.items()}
        return ClusterView(self.configs, self.replica_count, self.detector.alive(self.world.now), reports, self.level)

    def _guard_loop(self) -> None:
        for proposal in propose(self.view()):
            self._apply(proposal)
        self.world.after(self.sim.params.guardian_every, META, self._guard_loop)

    def _apply(self, proposal: Proposal) -> None:
        gpid = proposal.new.gpid
        if self.configs[gpid] != proposal.old:
            return
        self.sim.checker.on_config_change(proposal, self.view())
        self.configs[gpid] = proposal.new  # persisted ...
        self.changes += 1
        self.sim.counters["meta_" + proposal.reason.split()[0] + ("_" + proposal.reason.split()[1]
                                                                   if proposal.reason.startswith("balance") else "")] += 1
        self.world.note(META, f"{gpid} ballot {proposal.new.ballot}: {proposal.reason} -> primary "
                              f"{proposal.new.primary or '-'} secondaries {list(proposal.new.secondaries)} "
                              f"learners {list(proposal.new.learners)}")
        wire = [proposal.new.to_wire()]  # ... then announced
        for node in sorted(set(proposal.old.everyone + proposal.new.everyone)):
            self.sim.network.send(META, node, ("config", wire))

    def _on_packet(self, src: str, payload: tuple) -> None:
        kind = payload[0]
        now = self.world.now
        if kind == "beacon":
            _, send_time, raw_reports = payload
            self.detector.on_beacon(src, now)
            reports = [ReplicaReport.from_wire(r) for r in raw_reports]
            if send_time > self.reports.get(src, (-1.0, {}))[0]:
                self.reports[src] = (send_time, {r.gpid: r for r in reports})
            assigned = assignments_for(src, self.configs.values(), [r.gpid for r in reports])
            self.sim.network.send(META, src, ("beacon_ack", send_time, [c.to_wire() for c in assigned]))
        elif kind == "request":
            proposal = handle_request(self.view(), ConfigChangeRequest.from_wire(payload[1]))
            if proposal is not None:
                self._apply(proposal)
        elif kind == "query":
            self.sim.network.send(META, src, ("configs", [c.to_wire() for c in self.configs.values()]))
        else:
            raise AssertionError(f"unknown packet {kind}")
