"""A simulated replica server: the edge that carries out the real ReplicaCore's effects.

It is what the Twisted replica server does, on the simulated world: beacons and the lease, a timer tick,
group-committed fsyncs of the WAL (with a random latency), applies to the state machine, checkpoints and
WAL garbage collection, learner loads from the WAL or checkpoint, and client reads and writes. Replication
messages go over the network as msgpack of ``to_wire()``, so the wire codec is exercised too. A crash
loses everything in memory and the unsynced WAL tail; a restart recovers each replica from its disk.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import msgpack

from pegasus_node.errors import ErrorCode
from pegasus_node.replication import effects as fx
from pegasus_node.replication.config import PartitionConfiguration
from pegasus_node.replication.core import ReplicaCore
from pegasus_node.replication.lease import ReplicaLease
from pegasus_node.replication.messages import decode_message
from tests.sim.disk import PartitionDisk, StateMachine

if TYPE_CHECKING:
    from tests.sim.cluster import Simulation

META = "meta"


class SimReplicaServer:
    def __init__(self, sim: "Simulation", address: str) -> None:
        self.sim = sim
        self.world = sim.world
        self.address = address
        self.disks: dict[tuple, PartitionDisk] = {}
        self.up = False
        self.incarnation = 0
        self.cores: dict[tuple, ReplicaCore] = {}
        self.machines: dict[tuple, StateMachine] = {}

    # ------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.up = True
        self.incarnation += 1
        self.cores, self.machines = {}, {}
        self.last_seq: dict[tuple, int] = {}
        self.syncing: set[tuple] = set()
        self.flush_due: set[tuple] = set()
        self.follower_reads: dict[tuple, tuple[str, tuple]] = {}  # request id -> (client, key)
        self.lease = ReplicaLease(self.sim.params.lease)
        self.sim.network.register(self.address, self._on_packet)
        for gpid, disk in sorted(self.disks.items()):
            self._recover(gpid, disk)
        self._every(self.sim.params.beacon, self._beacon)
        self._every(self.sim.params.tick, self._tick)
        self._every(self.sim.params.checkpoint_every, self._checkpoint)
        self.world.note(self.address, "started")

    def crash(self) -> None:
        self.up = False
        self.sim.network.unregister(self.address)
        for disk in self.disks.values():
            disk.crash()
        self.cores, self.machines = {}, {}
        self.world.note(self.address, "crashed")

    def local_error(self, gpid: tuple, reason: str) -> None:
        self.world.note(self.address, f"{gpid} storage error: {reason}")
        self._run(gpid, self.cores[gpid].on_local_error(self.world.now, reason))

    def _later(self, delay: float, fn, *args: Any) -> None:
        """Run ``fn`` later on this server, unless it crashed (or crashed and restarted) meanwhile."""
        incarnation = self.incarnation

        def guarded() -> None:
            if self.up and self.incarnation == incarnation:
                fn(*args)

        self.world.after(delay, self.address, guarded)

    def _every(self, period: float, fn) -> None:
        def again() -> None:
            fn()
            self._later(period, again)

        self._later(self.world.rng.uniform(0, period), again)

    def _recover(self, gpid: tuple, disk: PartitionDisk) -> None:
        decree, snapshot = disk.checkpoint if disk.checkpoint else (0, None)
        self.machines[gpid] = StateMachine(snapshot)
        core = ReplicaCore(self.address, gpid, self.sim.params.options, ballot=disk.ballot,
                           checkpoint_decree=decree, log=disk.recover())
        self.cores[gpid] = core
        self.last_seq[gpid] = 0
        self._run(gpid, core.start(self.world.now))

    def _core_for(self, config: PartitionConfiguration) -> ReplicaCore | None:
        core = self.cores.get(config.gpid)
        if core is None and self.address in config.everyone:
            disk = self.disks.setdefault(config.gpid, PartitionDisk())
            self.sim.checker.watch_disk(self.address, config.gpid, disk)
            self.machines[config.gpid] = StateMachine()
            core = self.cores[config.gpid] = ReplicaCore(self.address, config.gpid, self.sim.params.options)
            self.last_seq[config.gpid] = 0
            core.on_lease(self.world.now, self.lease.valid_until)
        return core

    # --------------------------------------------------------------------------------------- effects

    def _run(self, gpid: tuple, effects: list) -> None:
        """Carry out effects in order; results that feed back (applies) run right after, in order."""
        follow_ups: deque = deque([effects])
        while follow_ups and self.up:
            for effect in follow_ups.popleft():
                more = self._do(gpid, effect)
                if more:
                    follow_ups.append(more)

    def _do(self, gpid: tuple, effect: Any) -> list | None:
        now = self.world.now
        core, disk = self.cores[gpid], self.disks[gpid]
        self.sim.counters[type(effect).__name__] += 1
        if isinstance(effect, fx.Send):
            self.sim.network.send(self.address, effect.to, ("repl", msgpack.packb(effect.message.to_wire())))
        elif isinstance(effect, fx.AppendLog):
            if disk.records and effect.mutation.decree <= max(m.decree for m in disk.records[-3:]):
                self.sim.counters["append_supersedes"] += 1
            disk.records.append(effect.mutation)
            self.last_seq[gpid] = effect.seq
            if gpid not in self.syncing:
                self._start_fsync(gpid)
        elif isinstance(effect, fx.ApplyMutation):
            self.sim.checker.on_apply(self.address, gpid, effect.mutation)
            results = self.machines[gpid].apply(effect.mutation)
            return core.on_apply_finished(now, effect.mutation.decree, results)
        elif isinstance(effect, fx.ReplyRead):
            self.sim.counters[f"follower_read_{effect.error.name}"] += 1
            client, key = self.follower_reads.pop(effect.read_id)
            value = self.machines[gpid].get(*key) if effect.error == ErrorCode.ERR_OK else None
            self.sim.network.send(self.address, client, ("reply", effect.read_id, int(effect.error), 0, (), value),
                                  may_duplicate=False)
        elif isinstance(effect, fx.ReplyClient):
            self.sim.counters[f"reply_{effect.error.name}"] += 1
            if effect.error == ErrorCode.ERR_OK:
                self.sim.checker.on_ack(gpid, effect.decree)
            client = effect.request_id[0]
            self.sim.network.send(self.address, client, ("reply", effect.request_id, int(effect.error),
                                                         effect.decree, effect.results, None), may_duplicate=False)
        elif isinstance(effect, fx.PersistBallot):
            disk.ballot = effect.ballot
        elif isinstance(effect, fx.InstallCheckpoint):
            disk.checkpoint = (effect.decree, effect.checkpoint)
            self.machines[gpid] = StateMachine(effect.checkpoint)
        elif isinstance(effect, fx.LoadLearnState):
            self._later(self.world.rng.uniform(0.0005, 0.003), self._load_learn_state, gpid, effect)
        elif isinstance(effect, fx.ReportToMeta):
            self.sim.network.send(self.address, META, ("request", effect.request.to_wire()))
        elif isinstance(effect, fx.StatusChanged):
            self.world.note(self.address, f"{gpid} ballot {effect.ballot}: {effect.old.value} -> {effect.new.value}")
        else:
            raise AssertionError(f"unknown effect {effect!r}")
        return None

    def _start_fsync(self, gpid: tuple) -> None:
        disk = self.disks[gpid]
        self.syncing.add(gpid)
        upto, seq = len(disk.records), self.last_seq[gpid]
        self._later(self.sim.fsync_delay(), self._fsync_done, gpid, upto, seq)

    def _fsync_done(self, gpid: tuple, upto: int, seq: int) -> None:
        disk = self.disks[gpid]
        disk.sync(upto)
        self.syncing.discard(gpid)
        if len(disk.records) > disk.synced:
            self._start_fsync(gpid)
        self._run(gpid, self.cores[gpid].on_log_durable(self.world.now, seq))

    def _load_learn_state(self, gpid: tuple, load: fx.LoadLearnState) -> None:
        disk = self.disks[gpid]
        log = disk.log_view()
        have = {m.decree: m for m in log}
        wanted = range(load.start_decree, load.end_decree + 1)
        if all(d in have for d in wanted):
            checkpoint, base = None, 0
            mutations = [have[d] for d in wanted]
        else:
            base, checkpoint = disk.checkpoint if disk.checkpoint else (0, None)
            mutations = [have[d] for d in range(base + 1, load.end_decree + 1) if d in have]
        core = self.cores[gpid]
        self._run(gpid, core.on_learn_state_loaded(self.world.now, load.load_id, base, checkpoint, mutations))

    # ----------------------------------------------------------------------------------------- timers

    def _beacon(self) -> None:
        reports = [core.report().to_wire() for core in self.cores.values()]
        self.sim.network.send(self.address, META, ("beacon", self.world.now, reports))

    def _tick(self) -> None:
        for gpid, core in list(self.cores.items()):
            self._run(gpid, core.on_tick(self.world.now))

    def _checkpoint(self) -> None:
        for gpid, core in self.cores.items():
            disk, machine = self.disks[gpid], self.machines[gpid]
            if machine.decree > disk.checkpoint_decree and machine.decree == core.applied:
                disk.take_checkpoint(machine.decree, machine.snapshot())

    # --------------------------------------------------------------------------------------- messages

    def _on_packet(self, src: str, payload: tuple) -> None:
        kind = payload[0]
        now = self.world.now
        if kind == "repl":
            message = decode_message(msgpack.unpackb(payload[1]))
            self.sim.counters["msg_" + message.TYPE] += 1
            if message.TYPE == "learn_response" and message.checkpoint is not None:
                self.sim.counters["learn_with_checkpoint"] += 1
            core = self.cores.get(message.gpid)
            if core is not None:
                self._run(message.gpid, core.on_message(now, message))
        elif kind in ("beacon_ack", "config"):
            configs = [PartitionConfiguration.from_wire(c) for c in payload[-1]]
            for config in configs:
                core = self._core_for(config)
                if core is not None:
                    self._run(config.gpid, core.on_config(now, config))
            if kind == "beacon_ack":  # configurations first, then the lease (see lease.py)
                until = self.lease.on_beacon_acked(payload[1])
                for gpid, core in list(self.cores.items()):
                    self._run(gpid, core.on_lease(now, until))
        elif kind == "write":
            self._client_write(*payload[1:])
        elif kind == "read":
            self._client_read(src, *payload[1:])
        elif kind == "follower_read":
            self._client_follower_read(src, *payload[1:])
        else:
            raise AssertionError(f"unknown packet {kind}")

    def _client_write(self, request_id: tuple, gpid: tuple, writes: list, deadline: float) -> None:
        core = self.cores.get(gpid)
        if core is None:
            self.sim.network.send(self.address, request_id[0],
                                  ("reply", request_id, int(ErrorCode.ERR_OBJECT_NOT_FOUND), 0, (), None),
                                  may_duplicate=False)
            return
        batching = self.sim.params.batch_per_turn
        self._run(gpid, core.on_client_write(self.world.now, request_id, writes, deadline=deadline, flush=not batching))
        self._flush_at_end_of_turn(gpid)

    def _client_follower_read(self, src: str, request_id: tuple, gpid: tuple, key: tuple, deadline: float) -> None:
        core = self.cores.get(gpid)
        if core is None:
            self.sim.network.send(self.address, src,
                                  ("reply", request_id, int(ErrorCode.ERR_OBJECT_NOT_FOUND), 0, (), None),
                                  may_duplicate=False)
            return
        self.follower_reads[request_id] = (src, key)
        batching = self.sim.params.batch_per_turn
        self._run(gpid, core.on_follower_read(self.world.now, request_id, deadline=deadline, flush=not batching))
        self._flush_at_end_of_turn(gpid)

    def _flush_at_end_of_turn(self, gpid: tuple) -> None:
        if self.sim.params.batch_per_turn and gpid not in self.flush_due:
            self.flush_due.add(gpid)  # like a reactor's callLater(0): one flush for the writes of this turn
            self._later(0.0, self._flush, gpid)

    def _flush(self, gpid: tuple) -> None:
        self.flush_due.discard(gpid)
        self._run(gpid, self.cores[gpid].flush(self.world.now))

    def _client_read(self, src: str, request_id: tuple, gpid: tuple, key: tuple) -> None:
        core = self.cores.get(gpid)
        error = ErrorCode.ERR_OBJECT_NOT_FOUND if core is None else core.check_read(self.world.now)
        value = self.machines[gpid].get(*key) if error == ErrorCode.ERR_OK else None
        self.sim.network.send(self.address, src, ("reply", request_id, int(error), 0, (), value), may_duplicate=False)
