"""A hand-driven harness for ReplicaCore unit tests: real cores, with messages and fsyncs held in queues
until the test delivers them, so a test can stage any interleaving (drop one prepare, sync one disk...).

Messages go through ``to_wire()`` and ``decode_message`` like on the network. Applies go to the simulator's
state machine (the storage engine's apply path on a memtable).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pegasus_node.errors import ErrorCode
from pegasus_node.replication import effects as fx
from pegasus_node.replication.config import PartitionConfiguration, ReplicationOptions
from pegasus_node.replication.core import ReplicaCore
from pegasus_node.replication.messages import decode_message
from pegasus_node.storage.mutation import Mutation
from pegasus_node.storage.operations import put_op
from tests.sim.disk import StateMachine

GPID = (1, 0)


@dataclass
class Harness:
    addresses: list[str]
    options: ReplicationOptions = field(default_factory=ReplicationOptions)
    now: float = 0.0

    def __post_init__(self) -> None:
        self.cores = {a: ReplicaCore(a, GPID, self.options) for a in self.addresses}
        self.machines = {a: StateMachine() for a in self.addresses}
        self.inbox: list[tuple[str, object]] = []
        self.unsynced: dict[str, int] = {}
        self.appended: dict[str, list[Mutation]] = {a: [] for a in self.addresses}
        self.applied: dict[str, list[int]] = {a: [] for a in self.addresses}
        self.replies: list[fx.ReplyClient] = []
        self.reads: list[tuple[str, fx.ReplyRead, bytes | None]] = []  # (replica, answer, value read then)
        self.reports: list[fx.ReportToMeta] = []
        self.loads: list[tuple[str, fx.LoadLearnState]] = []
        self.ballots: dict[str, int] = {}
        self.installs: list[tuple[str, fx.InstallCheckpoint]] = []
        self.effects: dict[str, list] = {a: [] for a in self.addresses}

    # ----------------------------------------------------------------------------------------- effects

    def run(self, address: str, effects: list) -> list:
        self.effects[address].extend(effects)
        for effect in effects:
            if isinstance(effect, fx.Send):
                self.inbox.append((effect.to, decode_message(effect.message.to_wire())))
            elif isinstance(effect, fx.AppendLog):
                self.unsynced[address] = effect.seq
                self.appended[address].append(effect.mutation)
            elif isinstance(effect, fx.ApplyMutation):
                results = self.machines[address].apply(effect.mutation)
                self.applied[address].append(effect.mutation.decree)
                self.run(address, self.cores[address].on_apply_finished(self.now, effect.mutation.decree, results))
            elif isinstance(effect, fx.ReplyClient):
                self.replies.append(effect)
            elif isinstance(effect, fx.ReplyRead):
                value = self.value(address) if effect.error == ErrorCode.ERR_OK else None
                self.reads.append((address, effect, value))
            elif isinstance(effect, fx.ReportToMeta):
                self.reports.append(effect)
            elif isinstance(effect, fx.LoadLearnState):
                self.loads.append((address, effect))
            elif isinstance(effect, fx.PersistBallot):
                self.ballots[address] = effect.ballot
            elif isinstance(effect, fx.InstallCheckpoint):
                self.installs.append((address, effect))
                self.machines[address] = StateMachine(effect.checkpoint)
        return effects

    # ------------------------------------------------------------------------------------------ events

    def configure(self, config: PartitionConfiguration, *, to: list[str] | None = None, lease: float = 1e9) -> None:
        for address in to or self.addresses:
            core = self.cores[address]
            self.run(address, core.on_config(self.now, config))
            self.run(address, core.on_lease(self.now, lease))

    def write(self, address: str, request_id: object, value: bytes, *, key: bytes = b"k", flush: bool = True) -> list:
        core = self.cores[address]
        return self.run(address, core.on_client_write(self.now, request_id, [put_op(key, b"s", value)], flush=flush))

    def follower_read(self, address: str, read_id: object, *, flush: bool = True,
                      deadline: float | None = None) -> list:
        return self.run(address, self.cores[address].on_follower_read(self.now, read_id, deadline=deadline,
                                                                      flush=flush))

    def deliver(self, *, to: str | None = None, kind: type | None = None, drop: bool = False) -> int:
        """Deliver (or drop) the queued messages that match, in order. Returns how many."""
        matched, kept = [], []
        for target, message in self.inbox:
            hit = (to is None or target == to) and (kind is None or isinstance(message, kind))
            (matched if hit else kept).append((target, message))
        self.inbox = kept
        if not drop:
            for target, message in matched:
                if target in self.cores:
                    self.run(target, self.cores[target].on_message(self.now, message))
        return len(matched)

    def sync(self, *addresses: str) -> None:
        for address in addresses or list(self.unsynced):
            seq = self.unsynced.pop(address, None)
            if seq is not None:
                self.run(address, self.cores[address].on_log_durable(self.now, seq))

    def settle(self, rounds: int = 20) -> None:
        for _ in range(rounds):
            if not self.inbox and not self.unsynced:
                return
            self.sync()
            self.deliver()

    def tick(self, seconds: float) -> None:
        self.now += seconds
        for address, core in self.cores.items():
            self.run(address, core.on_tick(self.now))

    def propagate(self) -> None:
        """Settle, then let one group check carry the primary's commit point to everyone."""
        self.settle()
        self.tick(self.options.group_check_seconds)
        self.settle()

    def value(self, address: str, key: bytes = b"k") -> bytes | None:
        return self.machines[address].get(key, b"s")

    def replies_for(self, request_id: object) -> list[fx.ReplyClient]:
        return [r for r in self.replies if r.request_id == request_id]


def config(ballot: int, primary: str, secondaries: tuple = (), learners: tuple = ()) -> PartitionConfiguration:
    return PartitionConfiguration(GPID, ballot, primary, tuple(secondaries), tuple(learners))
