"""The replica server process: beacons to the meta server, hosts the partitions it is assigned, serves data.

Failure detection follows PacificA with leases (DESIGN.md rule 3): every beacon the meta server
acknowledges extends this server's lease to ``send time + lease``. Measuring from the send time, not the
reply's arrival, is what guarantees that we stop serving as primary before the meta server (which waits
``grace`` > ``lease`` after the last beacon it received) may appoint another primary.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from pegasus_node import __version__
from pegasus_node.config import NodeConfig
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.fail_points import FailPointRegistry
from pegasus_node.remote_commands import RemoteCommands
from pegasus_node.replica.checkpoint_source import CHUNK_METHOD, serve_chunk
from pegasus_node.replica.data_handlers import DataHandlers
from pegasus_node.replica.duplications import ServerDuplications
from pegasus_node.replica.garbage import UnassignedReplicaCollector
from pegasus_node.replica.log_writer import ServerLogWriter
from pegasus_node.replica.partition import PartitionReplica
from pegasus_node.replica.replica_dir import remove_replica_dir, replica_dir
from pegasus_node.replica.peer_outbox import MESSAGES_METHOD, PeerOutbox
from pegasus_node.replication.config import PartitionConfiguration, ReplicationOptions, WireFormatError
from pegasus_node.replication.lease import ReplicaLease
from pegasus_node.replication.messages import decode_message
from pegasus_node.storage.shared_log import SharedLog
from pegasus_node.twisted_rpc import RateLimitedLog, RpcClientPool, RpcServer, expect

log = Logger(namespace="pegasus.replica_server")
# Batched replication messages are one-way: nobody hears of one that is skipped but this log, and a broken or
# confused peer can send thousands a second.
undelivered_log = RateLimitedLog(log)


class ReplicaServer:
    def __init__(self, config: NodeConfig, *, address: str, fail_points: FailPointRegistry | None = None,
                 clock=time.monotonic, reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.config = config
        self.address = address
        self.clock = clock
        self.started_at = clock()
        self.fail_points = fail_points or FailPointRegistry()
        self.pool = RpcClientPool(fail_points=self.fail_points, max_frame_bytes=config.max_frame_bytes)
        self.replication_options = ReplicationOptions(max_inflight_mutations=config.max_inflight_mutations,
                                                      min_batch_when_busy=config.min_batch_when_busy,
                                                      # a learn response must fit in one frame, with room to spare
                                                      max_learn_bytes=min(4 << 20, config.max_frame_bytes // 4),
                                                      prepare_timeout_seconds=config.prepare_timeout_seconds)
        self.lease = ReplicaLease(config.lease_seconds)
        self.replicas: dict[tuple[int, int], PartitionReplica] = {}
        self.garbage = UnassignedReplicaCollector(config.data_dir, config.gc_unassigned_replica_seconds, clock)
        # Held for the process's life: its LOCK keeps a second server off this data directory.
        self.shared_log = self._recover_shared_log()
        self.log_writer = ServerLogWriter(self.shared_log if config.fsync else None, self.fail_points, reactor)
        self._meta_index = 0
        self._beacon_failures = 0
        self._beacon_in_flight = False
        self._beacon_retry = None  # the sooner round after a failed one
        self.remote_commands = RemoteCommands()
        self.data = DataHandlers(self.lookup, config.max_value_bytes)
        self.duplications = ServerDuplications(self.replicas, config.cluster_id, config.duplication_enabled, reactor,
                                               lagging_threshold_ms=config.dup_lagging_write_threshold_ms)
        self._beacon_loop = task.LoopingCall(self.send_beacon)
        self._tick_loop = task.LoopingCall(self.tick)
        self._checkpoint_loop = task.LoopingCall(self.checkpoint_due)

    def _recover_shared_log(self) -> SharedLog:
        """Before any replica opens: WAL writes that only the shared log made durable go back into the WALs.
        Without fsync there is nothing to make durable, so nothing is appended to it (an old one still counts)."""
        config = self.config
        shared_log, report = SharedLog.recover(Path(config.data_dir) / "slog",
                                               lambda gpid: replica_dir(config.data_dir, *gpid) / "wal",
                                               fsync=config.fsync, rotate_bytes=config.shared_log_rotate_bytes)
        if report.records:
            log.info("shared log recovered: {summary}", summary=report.summary())
        return shared_log

    # ----- routing -----

    def lookup(self, gpid) -> PartitionReplica:
        if not (type(gpid) is list and len(gpid) == 2 and type(gpid[0]) is int and type(gpid[1]) is int):
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, "gpid must be [app_id, partition_index]")
        replica = self.replicas.get((gpid[0], gpid[1]))
        if replica is None:
            raise PegasusError(ErrorCode.ERR_OBJECT_NOT_FOUND, f"partition {gpid[0]}.{gpid[1]} is not hosted on {self.address}")
        return replica

    def lease_valid(self) -> bool:
        return self.lease.is_valid(self.clock())

    @property
    def meta_address(self) -> str:
        metas = self.config.meta_servers
        return metas[self._meta_index % len(metas)]

    # ----- peers and the meta server -----

    @functools.cached_property
    def outbox(self) -> PeerOutbox:
        return PeerOutbox(self.pool, self.reactor)

    def send_message(self, to: str, message) -> None:
        """One-way: a lost message is the protocol's business (the core retries), so nothing comes back. The
        messages of one reactor turn to one peer travel together (peer_outbox.py)."""
        self.outbox.send(to, message.to_wire())

    def report_to_meta(self, request) -> None:
        d = self.pool.call(self.meta_address, "meta.config_change_request", request.to_wire(), 5.0)
        d.addErrback(lambda f: log.info("configuration change request {r} not delivered: {e}", r=request,
                                        e=f.getErrorMessage()))

    # ----- beacons and assignments -----

    def send_beacon(self) -> defer.Deferred | None:
        """One beacon round (the beacon loop's, or a retry's): every meta server in turn until one acknowledges.
        After a failed round the next comes in a quarter of the interval: a new leader is then found, and the
        lease renewed, soon after it is elected, not up to a whole interval later."""
        if self._beacon_in_flight:
            return None
        self._beacon_in_flight = True
        d = self._beacon_round()

        def done(acknowledged):
            self._beacon_in_flight = False
            if isinstance(acknowledged, Failure):  # a bug: the beacons must go on all the same
                log.failure("beacon round failed", acknowledged)
            retry_pending = self._beacon_retry is not None and self._beacon_retry.active()
            if acknowledged is not True and self._beacon_loop.running and not retry_pending:
                self._beacon_retry = self.reactor.callLater(self.config.beacon_interval_seconds / 4, self.send_beacon)
        return d.addBoth(done)

    @defer.inlineCallbacks
    def _beacon_round(self):
        reports = [r for r in (replica.report() for replica in self.replicas.values()) if r is not None]
        # A meta server that is down, or does not lead (it says so at once), and the next one is asked.
        round_ends = self.clock() + self.config.beacon_interval_seconds
        for _ in self.config.meta_servers:
            meta = self.meta_address
            sent_at = self.clock()
            if sent_at >= round_ends:
                return False
            body = {"address": self.address, "send_time_ms": int(time.time() * 1000), "replicas": reports,
                    "duplication_progress": self.duplications.progress()}
            try:
                reply = yield self.pool.call(meta, "meta.beacon", body, round_ends - sent_at)
                break
            except PegasusError as exc:
                self._beacon_failures += 1
                self._meta_index += 1
                if self._beacon_failures in (1, 10) or self._beacon_failures % 60 == 0:
                    log.warn("beacon to meta server {meta} failed ({n} in a row): {err}", meta=meta,
                             n=self._beacon_failures, err=exc)
        else:
            return False
        if self._beacon_failures:
            log.info("beacon to meta server {meta} succeeded again", meta=meta)
        self._beacon_failures = 0
        # Configurations first, then the lease: a beacon reply delayed past our death must not extend a
        # primary role that the meta server has since given away (lease.py).
        self.apply_assignments(reply.get("assignments", []), reply.get("purged_app_ids", []), prune=True)
        until = self.lease.on_beacon_acked(sent_at)
        for replica in list(self.replicas.values()):
            replica.on_lease(until)
        # Only here does the hosted set match the meta server's full view. After the lease: deleting a
        # directory may take a while, and must not hold the lease back.
        available = reply.get("available_app_ids")  # None from a meta server that predates it
        self.garbage.collect(self.replicas.keys(), available if isinstance(available, list) else None)
        duplications = reply.get("duplications")
        if isinstance(duplications, list):
            self.duplications.sync(duplications)
        return True

    def apply_assignments(self, assignments: list[dict], purged_app_ids: list[int] = (), *,
                          prune: bool = False) -> None:
        """Give each hosted replica its configuration; open replicas newly assigned here; with ``prune``
        (a beacon reply holds every assignment), close the ones no longer assigned."""
        wanted = {}
        for assignment in assignments:
            try:
                config = PartitionConfiguration.from_wire(assignment)
            except WireFormatError as exc:
                log.warn("ignoring a malformed partition configuration from the meta server: {e}", e=exc)
                continue
            wanted[config.gpid] = config
            replica = self.replicas.get(config.gpid)
            if replica is None:
                replica = self.replicas[config.gpid] = PartitionReplica(self, config.gpid)
                replica.open()
            replica.app_name = assignment.get("app_name", replica.app_name)
            replica.partition_count = assignment.get("partition_count", replica.partition_count)
            replica.on_config(config)
        if prune:
            for gpid in [g for g in self.replicas if g not in wanted]:
                self.replicas.pop(gpid).close()
                log.info("replica {gpid} closed: no longer assigned to this server", gpid=gpid)
        for app_id in purged_app_ids:
            for path in replica_dir(self.config.data_dir, app_id, 0).parent.glob(f"{app_id}.*"):
                if tuple(int(x) for x in path.name.split(".")) not in self.replicas:
                    remove_replica_dir(path)
                    log.info("removed data of purged table app_id={id}: {p}", id=app_id, p=str(path))

    def tick(self) -> None:
        for replica in list(self.replicas.values()):
            replica.on_tick()

    # ----- checkpoints -----

    def checkpoint_due(self):
        """Checkpoint a replica after many mutations, or after a quiet interval with any new ones."""
        now = self.clock()
        due = []
        for replica in list(self.replicas.values()):
            backlog = replica.last_committed_decree - replica.checkpoint_decree
            if backlog >= self.config.checkpoint_min_mutations or (
                backlog > 0 and now - replica.checkpointed_at >= self.config.checkpoint_interval_seconds
            ):
                replica.checkpointed_at = now
                due.append(replica.checkpoint())
        return defer.DeferredList(due)

    @defer.inlineCallbacks
    def checkpoint_all(self):
        decrees = {}
        for gpid, replica in list(self.replicas.items()):
            decree = yield replica.checkpoint(force=True)
            decrees[f"{gpid[0]}.{gpid[1]}"] = decree
        return decrees

    # ----- status and admin -----

    def status(self) -> dict:
        return {"address": self.address, "lease_valid": self.lease_valid(), "counters": dict(self.data.counters),
                "lease_remaining_ms": int(self.lease.remaining(self.clock()) * 1000),
                "log_writer": self.log_writer.stats(),
                "replicas": [replica.status_entry() for replica in self.replicas.values()],
                "duplications": self.duplications.status()}

    def duplication_http(self, args: dict) -> dict:
        """``/replica/duplication?appid=N``: this server's duplicators (of table N)."""
        raw = (args.get("appid") or [""])[0]
        app_id = int(raw) if raw.isdigit() else None
        return {"address": self.address, "duplications": self.duplications.status(app_id)}

    def server_info(self) -> dict:
        return {"role": "replica", "address": self.address, "version": __version__, "pid": os.getpid(),
                "uptime_seconds": int(self.clock() - self.started_at), "data_dir": self.config.data_dir,
                "meta_servers": list(self.config.meta_servers), "replica_count": len(self.replicas)}

    def register(self, server: RpcServer) -> None:
        self.data.register(server)
        server.register("replica.status", lambda body, ctx: self.status())
        server.register("replication.message", self._rpc_replication_message)
        server.register(MESSAGES_METHOD, self._rpc_replication_messages)
        server.register("replica.config_update", self._rpc_config_update)
        server.register(CHUNK_METHOD, self._rpc_checkpoint_chunk)
        server.register("node.remote_command", self._rpc_remote_command)
        server.add_http_json("/replica/duplication", self.duplication_http)
        self.remote_commands.register("server-info", lambda args: self.server_info(), "version, role, uptime, pid")
        self.remote_commands.register("replica.checkpoint", lambda args: self.checkpoint_all(),
                                      "write a checkpoint of every replica now and GC the WAL")

    def _deliver_replication_message(self, wire) -> None:
        """Decode a message's ``to_wire()`` and hand it to its replica. Raises PegasusError: ERR_INVALID_PARAMETERS
        when it is malformed, ERR_OBJECT_NOT_FOUND when its partition is not hosted here."""
        try:
            message = decode_message(wire)
        except WireFormatError as exc:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, f"malformed replication message: {exc}") from None
        replica = self.replicas.get(tuple(message.gpid))
        if replica is None:
            raise PegasusError(ErrorCode.ERR_OBJECT_NOT_FOUND, f"partition {message.gpid} is not hosted here")
        replica.on_message(message)

    def _rpc_replication_message(self, body, ctx):
        b = expect(body, {"message": dict})
        self._deliver_replication_message(b["message"])
        return {}

    def _rpc_replication_messages(self, body, ctx):
        """A peer's batch (a notify: see peer_outbox.py). Each message stands alone, as when each was an RPC: one
        that cannot be delivered is logged and skipped, and the rest are delivered."""
        b = expect(body, {"messages": list})
        for wire in b["messages"]:
            try:
                self._deliver_replication_message(wire)
            except PegasusError as exc:
                # A partition not hosted here is routine while configurations change; a malformed message is not.
                report = undelivered_log.info if exc.code == ErrorCode.ERR_OBJECT_NOT_FOUND else undelivered_log.warn
                report(exc.code, "replication message from {peer} skipped: {error}", peer=ctx.peer, error=exc.message)
            except Exception:
                undelivered_log.failure("handler", "replication message from {peer} failed", peer=ctx.peer)

    def _rpc_config_update(self, body, ctx):
        """The meta server pushes a changed configuration at once, so nobody waits for the next beacon."""
        b = expect(body, {"configs": list})
        self.apply_assignments(b["configs"])
        return {}

    def _rpc_checkpoint_chunk(self, body, ctx):
        """A learner fetches a checkpoint that a learn response named (checkpoint_source.py)."""
        return serve_chunk(self.lookup, body, self.config.max_frame_bytes, self.address)

    def _rpc_remote_command(self, body, ctx):
        b = expect(body, {"command": str}, optional={"args": list})
        result = self.remote_commands.run(b["command"], [str(a) for a in b.get("args", [])])
        return defer.maybeDeferred(lambda: result).addCallback(lambda out: {"output": out})

    def start(self) -> None:
        # Checkpoints and learner loads run in the reactor's thread pool (the log writer has its own thread).
        self.reactor.suggestThreadPoolSize(16)
        self._beacon_loop.start(self.config.beacon_interval_seconds, now=True)
        self._tick_loop.start(0.1, now=False)
        self._checkpoint_loop.start(min(5.0, self.config.checkpoint_interval_seconds), now=False)

    @defer.inlineCallbacks
    def stop(self):
        for loop in (self._beacon_loop, self._tick_loop, self._checkpoint_loop):
            if loop.running:
                loop.stop()
        if self._beacon_retry is not None and self._beacon_retry.active():
            self._beacon_retry.cancel()
        yield self.duplications.stop()
        for replica in self.replicas.values():
            replica.close()
        self.log_writer.stop()
        yield self.pool.close()
