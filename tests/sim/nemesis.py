"""The fault schedule of one run, drawn from its seed: crashes and restarts of replica servers, network
partitions (a server cut off from everyone, from the meta server only, one link, or a split of the
servers in two), and meta-level changes. ``heal`` ends every fault at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pegasus_node.meta.guardian import MetaLevel

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation

META = "meta"


class Nemesis:
    def __init__(self, sim: "Simulation") -> None:
        self.sim = sim
        self.world = sim.world
        self.cuts: list[tuple[str, str]] = []
        self.crashes = 0
        self.partitions = 0
        rng = self.world.rng
        params = sim.params
        # a per-run mix of faults, so that some runs are crash-heavy and others partition-heavy
        self.weights = {
            "crash": rng.choice([0, 1, 2, 3]),
            "crash_primary": rng.choice([0, 1, 2, 3]),
            "isolate": rng.choice([0, 1, 2]),
            "isolate_from_meta": rng.choice([0, 1, 2]),
            "cut_link": rng.choice([0, 1, 2]),
            "split": rng.choice([0, 1]),
            "slow_link": rng.choice([0, 1, 2]),
            "diverge": rng.choice([0, 1, 2]),
            "disk_error": rng.choice([0, 0, 1]),
            "level": rng.choice([0, 1]),
        }
        if not any(self.weights.values()):
            self.weights["crash"] = 1
        t = rng.uniform(0.3, 1.0)
        while t < params.chaos_seconds:
            self.world.at(t, None, self._strike)
            t += rng.expovariate(1.0 / params.fault_gap)

    def _strike(self) -> None:
        if self.sim.healed:
            return
        rng = self.world.rng
        kinds = [k for k, w in self.weights.items() for _ in range(w)]
        getattr(self, "_" + rng.choice(kinds))()

    def _duration(self) -> float:
        return self.world.rng.uniform(0.2, self.sim.params.max_fault_seconds)

    def _crash(self, victim: str | None = None) -> None:
        servers = self.sim.servers
        down = [s for s in servers.values() if not s.up]
        if len(down) >= self.sim.params.max_down:
            return
        if victim is None or not servers[victim].up:
            victim = self.world.rng.choice(sorted(a for a, s in servers.items() if s.up))
        servers[victim].crash()
        self.crashes += 1
        self.world.after(self._duration(), None, self._restart, victim)

    def _crash_primary(self) -> None:
        """Crash the server leading a partition, likely with mutations in flight."""
        primaries = sorted({c.primary for c in self.sim.meta.configs.values() if c.primary})
        self._crash(self.world.rng.choice(primaries) if primaries else None)

    def _restart(self, address: str) -> None:
        server = self.sim.servers[address]
        if not server.up:
            server.start()

    def _cut(self, pairs: list[tuple[str, str]], what: str) -> None:
        self.partitions += 1
        for a, b in pairs:
            self.sim.network.cut(a, b)
        self.world.note(None, f"partition: {what}")
        self.world.after(self._duration(), None, self._uncut, pairs)

    def _uncut(self, pairs: list[tuple[str, str]]) -> None:
        for a, b in pairs:
            self.sim.network.uncut(a, b)

    def _isolate(self) -> None:
        node = self.world.rng.choice(sorted(self.sim.servers))
        others = [n for n in self.sim.all_nodes() if n != node]
        self._cut([(node, other) for other in others], f"{node} isolated")

    def _isolate_from_meta(self) -> None:
        node = self.world.rng.choice(sorted(self.sim.servers))
        self._cut([(node, META)], f"{node} cut from the meta server")

    def _cut_link(self) -> None:
        a, b = self.world.rng.sample(sorted(self.sim.servers), 2)
        self._cut([(a, b)], f"link {a} - {b} cut")

    def _diverge(self) -> None:
        """Cut a primary from one secondary, then crash the primary while mutations it prepared have reached
        only some replicas: the logs diverge beyond the commit point, and reconciliation must sort it out."""
        configs = [c for c in self.sim.meta.configs.values() if c.primary and c.secondaries]
        if not configs:
            return
        config = self.world.rng.choice(sorted(configs, key=lambda c: c.gpid))
        secondary = self.world.rng.choice(config.secondaries)
        self._cut([(config.primary, secondary)], f"{config.primary} - {secondary} cut, then the primary crashes")
        self.world.after(self.world.rng.uniform(0.05, 0.35), None, self._crash, config.primary)

    def _disk_error(self) -> None:
        """A replica's storage fails (say, an fsync error): it goes to ERROR until its server restarts."""
        servers = [s for _, s in sorted(self.sim.servers.items()) if s.up and s.cores]
        if not servers:
            return
        server = self.world.rng.choice(servers)
        gpid = self.world.rng.choice(sorted(server.cores))
        server.local_error(gpid, "simulated disk failure")
        self.world.after(self._duration(), None, self._restart_after_error, server.address, server.incarnation)

    def _restart_after_error(self, address: str, incarnation: int) -> None:
        server = self.sim.servers[address]
        if server.up and server.incarnation == incarnation:
            server.crash()
            server.start()

    def _slow_link(self) -> None:
        """One direction of a link gets slow (a congested path): prepares reach one secondary late."""
        a, b = self.world.rng.sample(sorted(self.sim.servers), 2)
        self.sim.network.slow[(a, b)] = self.world.rng.uniform(0.02, 0.3)
        self.world.note(None, f"link {a} -> {b} slow")
        self.world.after(self._duration(), None, self.sim.network.slow.pop, (a, b), None)

    def _split(self) -> None:
        servers = sorted(self.sim.servers)
        self.world.rng.shuffle(servers)
        side = servers[: self.world.rng.randint(1, len(servers) - 1)]
        rest = [n for n in self.sim.all_nodes() if n not in side and n != META]
        self._cut([(a, b) for a in side for b in rest], f"split {side} | {rest}")

    def _level(self) -> None:
        meta = self.sim.meta
        meta.level = MetaLevel.LIVELY if meta.level is MetaLevel.STEADY else MetaLevel.STEADY
        self.world.note(META, f"meta level -> {meta.level.value}")

    def heal(self) -> None:
        self.sim.network.heal_all()
        for address, server in self.sim.servers.items():
            if not server.up:
                server.start()
