"""One simulation run: a meta server, several replica servers running the real ReplicationCore, clients,
and a nemesis, all on one seeded world. ``run_seed(seed)`` runs it and returns a SimResult.

A run has two phases. Chaos: the nemesis crashes servers and partitions the network while clients work.
Settle: every fault is healed, crashed servers restart, the meta level goes to ``steady``, and the
cluster must recover: every partition serves client operations again. Then the history must be
linearizable. The safety invariants (invariants.py) are checked after every step of both phases.
"""

from __future__ import annotations

import random
from collections import Counter
import traceback
from dataclasses import dataclass, field

from pegasus_node.checker import KvModel, Verdict, check
from pegasus_node.meta.guardian import MetaLevel
from pegasus_node.replication.config import PartitionConfiguration, ReplicationOptions
from tests.sim.client import SimClient
from tests.sim.invariants import InvariantChecker, InvariantViolation
from tests.sim.meta_server import META, SimMetaServer
from tests.sim.nemesis import Nemesis
from tests.sim.replica_server import SimReplicaServer
from tests.sim.world import Network, NetworkFaults, World

APP_ID = 1


@dataclass
class SimParams:
    """Everything a seed decides. Times are scaled down from the defaults (beacon 1 s, lease 4 s, grace
    5 s) by 5, and the network and disks are fast, so that one run covers several failovers in little
    simulated time. The protocol does not depend on the scale."""

    servers: int
    partitions: int
    replica_count: int
    clients: int
    keys: int
    options: ReplicationOptions
    faults: NetworkFaults
    batch_per_turn: bool
    follower_reads: float = 0.0  # the share of gets sent to a secondary as follower reads
    beacon: float = 0.2
    lease: float = 0.8
    grace: float = 1.0
    tick: float = 0.05
    guardian_every: float = 0.1
    checkpoint_every: float = 0.5
    client_timeout: float = 0.6
    think_time: float = 0.04
    chaos_seconds: float = 4.0
    settle_seconds: float = 5.0
    fault_gap: float = 0.8
    max_fault_seconds: float = 2.0
    max_down: int = 1
    fsync_min: float = 0.0002
    fsync_max: float = 0.003
    level: MetaLevel = MetaLevel.STEADY

    @classmethod
    def draw(cls, rng: random.Random, chaos_seconds: float | None) -> "SimParams":
        # Options added later come from their own generator, so that older seeds still replay the same runs.
        later = random.Random(repr(rng.getstate()[1][:8]))
        servers = rng.choice([3, 3, 4, 5])
        replica_count = rng.choice([2, 3, 3]) if servers > 3 or rng.random() < 0.7 else 2
        options = ReplicationOptions(
            max_inflight_mutations=rng.choice([1, 4, 32]),
            max_batch_ops=rng.choice([1, 8, 64]),
            prepare_retry_seconds=0.1,
            prepare_timeout_seconds=rng.choice([0.4, 0.6]),
            group_check_seconds=0.2,
            learn_retry_seconds=0.4,
            meta_request_retry_seconds=0.2,
            keep_committed_mutations=rng.choice([1, 4, 64]),
            max_buffered_prepares=rng.choice([8, 1024]),
            min_batch_when_busy=later.choice([1, 2, 4]),
            max_learn_bytes=later.choice([300, 4 << 20]),
        )
        heavy = rng.random() < 0.5
        faults = NetworkFaults(
            drop=rng.choice([0.0, 0.01, 0.05]) if heavy else 0.0,
            duplicate=rng.choice([0.0, 0.02]) if heavy else 0.0,
            spike=rng.choice([0.0, 0.05]),
        )
        params = cls(servers=servers, partitions=rng.choice([1, 2]), replica_count=replica_count,
                     clients=rng.choice([2, 3]), keys=rng.choice([2, 4]), options=options, faults=faults,
                     batch_per_turn=rng.random() < 0.5, max_down=rng.choice([1, 1, 2]),
                     level=rng.choice([MetaLevel.STEADY, MetaLevel.LIVELY]))
        if chaos_seconds is not None:
            params.chaos_seconds = chaos_seconds
        params.follower_reads = later.choice([0.0, 0.5, 0.5])
        return params


@dataclass
class SimResult:
    seed: int
    ok: bool
    error: str = ""
    trace: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def replay(self) -> str:
        return f"python -m tests.sim.run --seed {self.seed}"


class Simulation:
    def __init__(self, seed: int, chaos_seconds: float | None = None, trace_limit: int | None = 300) -> None:
        self.seed = seed
        self.world = World(seed, trace_limit)
        self.params = SimParams.draw(self.world.rng, chaos_seconds)
        self.network = Network(self.world, self.params.faults)
        self.checker = InvariantChecker(self)
        self.history: list = []
        self.healed = False
        self.counters: Counter = Counter()
        self.keys = [(f"h{i}".encode(), b"s") for i in range(self.params.keys)]
        self.servers = {f"rs{i}": SimReplicaServer(self, f"rs{i}") for i in range(1, self.params.servers + 1)}
        addresses = sorted(self.servers)
        configs = {}
        for pidx in range(self.params.partitions):
            members = [addresses[(pidx + k) % len(addresses)] for k in range(self.params.replica_count)]
            configs[(APP_ID, pidx)] = PartitionConfiguration((APP_ID, pidx), 1, members[0], tuple(members[1:]))
        self.meta = SimMetaServer(self, configs, self.params.replica_count, self.params.level)
        for server in self.servers.values():
            server.start()
        self.clients = [SimClient(self, i) for i in range(self.params.clients)]
        self.nemesis = Nemesis(self)

    def gpid_of(self, key: tuple) -> tuple:
        return (APP_ID, self.keys.index(key) % self.params.partitions)

    def all_nodes(self) -> list[str]:
        return sorted(self.servers) + [META] + [c.address for c in self.clients]

    def fsync_delay(self) -> float:
        return self.world.rng.uniform(self.params.fsync_min, self.params.fsync_max)

    def run(self) -> SimResult:
        params = self.params
        try:
            self.world.run_until(params.chaos_seconds, self.checker.after_step)
            self.healed = True
            self.nemesis.heal()
            self.network.faults = NetworkFaults()
            self.meta.level = MetaLevel.STEADY
            self.world.note(None, "healed: every fault ended, crashed servers restarted")
            self.world.run_until(params.chaos_seconds + params.settle_seconds, self.checker.after_step)
            for client in self.clients:
                client.stop()
            self._check_recovered()
            self._check_linearizable()
        except InvariantViolation as exc:
            return self._result(False, str(exc))
        except Exception:  # a crash of the code under test is a failure of this seed, with its trace
            return self._result(False, traceback.format_exc())
        return self._result(True)

    def _check_recovered(self) -> None:
        now = self.world.now
        for gpid, config in sorted(self.meta.configs.items()):
            server = self.servers.get(config.primary)
            core = server.cores.get(gpid) if server is not None and server.up else None
            if core is None or core.check_read(now).name != "ERR_OK":
                raise InvariantViolation(f"after healing, partition {gpid} has no serving primary "
                                         f"(meta config: ballot {config.ballot}, primary {config.primary or '-'})")
        stuck = [c.address for c in self.clients if c.successes_after_heal == 0]
        if stuck:
            raise InvariantViolation(f"after healing, clients {stuck} completed no operation")

    def _check_linearizable(self) -> None:
        result = check(self.history, KvModel(), timeout=60)
        if result.verdict is Verdict.ILLEGAL:
            raise InvariantViolation(f"history is not linearizable: {result.explanation}")
        if result.verdict is Verdict.UNKNOWN:
            raise InvariantViolation(f"linearizability check did not finish: {result.explanation}")

    def _result(self, ok: bool, error: str = "") -> SimResult:
        trace = [f"{t:9.4f} {owner or '-':>8} {text}" for t, owner, text in self.world.trace] if not ok else []
        acked = sum(len(d) for d in self.checker.acked.values())
        stats = {"steps": self.world.steps, "ops": len(self.history), "acked_decrees": acked,
                 "config_changes": self.meta.changes, "crashes": self.nemesis.crashes,
                 "partitions": self.nemesis.partitions, "messages": self.network.sent,
                 "counters": dict(self.counters)}
        return SimResult(self.seed, ok, error, trace, stats)


def run_seed(seed: int, chaos_seconds: float | None = None, trace_limit: int | None = 300) -> SimResult:
    return Simulation(seed, chaos_seconds, trace_limit).run()
