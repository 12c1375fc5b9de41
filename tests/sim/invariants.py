"""The safety checks, run as the simulation goes (each is cheap, so they run at every step):

1. A committed decree is identical on every replica that holds it: every apply, on every replica, is
   compared with the first apply of that decree anywhere (content: decree, commit point, timestamp, writes;
   the ballot may differ, as a new primary re-proposes under its own).
2. Never two primaries serving writes at the same instant: after every step of a replica server, if one of
   its replicas is primary with a valid lease, no other server's replica of that partition is.
3. No acknowledged write is lost: when a primary acknowledges decree d, every member (primary and
   secondaries) of the meta server's current configuration holds it durably (in its synced WAL, or under
   its checkpoint); a server joining the members holds every acknowledged decree; and no member's disk ever
   drops or replaces an acknowledged decree.
4. The meta server only ever promotes a secondary of the current configuration (or re-elects the current
   primary), and every change is ballot + 1.
The recorded history's linearizability is checked at the end of the run (cluster.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgpack

from pegasus_node.meta.guardian import ClusterView, Proposal
from pegasus_node.storage.mutation import Mutation
from tests.sim.disk import PartitionDisk

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation


class InvariantViolation(AssertionError):
    pass


def content(mutation: Mutation) -> tuple:
    return (mutation.decree, mutation.last_committed, mutation.timestamp_us,
            msgpack.packb(list(mutation.writes), use_bin_type=True))


class InvariantChecker:
    def __init__(self, sim: "Simulation") -> None:
        self.sim = sim
        self.committed: dict[tuple, dict[int, tuple]] = {}
        self.acked: dict[tuple, dict[int, tuple]] = {}
        self.applies = 0

    def fail(self, message: str) -> None:
        raise InvariantViolation(f"at t={self.sim.world.now:.4f}: {message}")

    # 1 ------------------------------------------------------------------------------------------------

    def on_apply(self, server: str, gpid: tuple, mutation: Mutation) -> None:
        self.applies += 1
        key = content(mutation)
        first = self.committed.setdefault(gpid, {}).setdefault(mutation.decree, key)
        if first != key:
            self.fail(f"{server} applies a different mutation at committed decree {mutation.decree} of {gpid}")

    # 2 ------------------------------------------------------------------------------------------------

    def after_step(self, owner: str | None) -> None:
        server = self.sim.servers.get(owner)
        if server is None or not server.up:
            return
        now = self.sim.world.now
        for gpid, core in server.cores.items():
            if not core.is_serving(now):
                continue
            for other in self.sim.servers.values():
                if other is server or not other.up:
                    continue
                rival = other.cores.get(gpid)
                if rival is not None and rival.is_serving(now):
                    self.fail(f"two primaries serve {gpid}: {server.address} (ballot {core.ballot}) and "
                              f"{other.address} (ballot {rival.ballot})")

    # 3 ------------------------------------------------------------------------------------------------

    def holds(self, server: str, gpid: tuple, decree: int, key: tuple) -> bool:
        disk = self.sim.servers[server].disks.get(gpid)
        if disk is None:
            return False
        if decree <= disk.checkpoint_decree:
            return True  # the checkpoint is the applied state, whose applies check 1 compared
        held = disk.durable.get(decree)
        return held is not None and content(held) == key

    def on_ack(self, gpid: tuple, decree: int) -> None:
        key = self.committed.get(gpid, {}).get(decree)
        if key is None:
            self.fail(f"a write is acknowledged at decree {decree} of {gpid}, which was never applied")
        self.acked.setdefault(gpid, {})[decree] = key
        for member in self.sim.meta.configs[gpid].members:
            if not self.holds(member, gpid, decree, key):
                self.fail(f"decree {decree} of {gpid} is acknowledged but member {member} does not hold it durably")

    def watch_disk(self, server: str, gpid: tuple, disk: PartitionDisk) -> None:
        def on_loss(decree: int, replacement: Mutation | None) -> None:
            key = self.acked.get(gpid, {}).get(decree)
            if key is None or (replacement is not None and content(replacement) == key):
                return
            if server in self.sim.meta.configs[gpid].members:
                self.fail(f"member {server} overwrote acknowledged decree {decree} of {gpid} on disk")

        disk.on_durable_loss = on_loss

    # 3, 4 ---------------------------------------------------------------------------------------------

    def on_config_change(self, proposal: Proposal, view: ClusterView) -> None:
        old, new = proposal.old, proposal.new
        if new.ballot != old.ballot + 1:
            self.fail(f"configuration of {new.gpid} goes from ballot {old.ballot} to {new.ballot}")
        if new.primary and new.primary != old.primary and new.primary not in old.secondaries:
            self.fail(f"{new.primary} promoted in {new.gpid} but it is not a secondary of ballot {old.ballot}")
        for node in set(new.members) - set(old.members):
            for decree, key in self.acked.get(new.gpid, {}).items():
                if not self.holds(node, new.gpid, decree, key):
                    self.fail(f"{node} becomes a member of {new.gpid} ({proposal.reason}) without acknowledged "
                              f"decree {decree}")
