"""The replica server process: beacons to the meta server, hosts the partitions it is assigned, serves data.

Failure detection follows PacificA with leases (DESIGN.md rule 3): every beacon the meta server
acknowledges extends this server's lease to ``send time + lease``. Measuring from the send time, not the
reply's arrival, is what guarantees that we stop serving as primary before the meta server (which waits
``grace`` > ``lease`` after the last beacon it received) may appoint another primary.
"""

from __future__ import annotations

import os
import time

from twisted.internet import defer, task
from twisted.logger import Logger

from pegasus_node import __version__
from pegasus_node.config import NodeConfig
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.fail_points import FailPointRegistry
from pegasus_node.remote_commands import RemoteCommands
from pegasus_node.replica.data_handlers import DataHandlers
from pegasus_node.replica.partition import (
    INACTIVE, PRIMARY, PartitionReplica, remove_replica_dir, replica_dir,
)
from pegasus_node.twisted_rpc import RpcClientPool, RpcServer, expect

log = Logger(namespace="pegasus.replica_server")


class ReplicaServer:
    def __init__(self, config: NodeConfig, *, address: str, fail_points: FailPointRegistry | None = None,
                 clock=time.monotonic) -> None:
        self.config = config
        self.address = address
        self.clock = clock
        self.started_at = clock()
        self.fail_points = fail_points or FailPointRegistry()
        self.pool = RpcClientPool(fail_points=self.fail_points)
        self.replicas: dict[tuple[int, int], PartitionReplica] = {}
        self.lease_valid_until = 0.0
        self._meta_index = 0
        self._beacon_failures = 0
        self.remote_commands = RemoteCommands()
        self.data = DataHandlers(self.lookup, config.max_value_bytes)
        self._beacon_loop = task.LoopingCall(self.send_beacon)
        self._checkpoint_loop = task.LoopingCall(self.checkpoint_due)

    # ----- routing -----

    def lookup(self, gpid) -> PartitionReplica:
        if not (isinstance(gpid, list) and len(gpid) == 2 and all(type(x) is int for x in gpid)):
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, "gpid must be [app_id, partition_index]")
        replica = self.replicas.get((gpid[0], gpid[1]))
        if replica is None:
            raise PegasusError(ErrorCode.ERR_OBJECT_NOT_FOUND, f"partition {gpid[0]}.{gpid[1]} is not hosted on {self.address}")
        if replica.status == PRIMARY and not self.lease_valid():
            raise PegasusError(ErrorCode.ERR_INVALID_STATE,
                               f"{self.address} has no valid lease from the meta server; not serving {gpid[0]}.{gpid[1]}")
        return replica

    def lease_valid(self) -> bool:
        return self.clock() < self.lease_valid_until

    # ----- beacons and assignments -----

    @defer.inlineCallbacks
    def send_beacon(self):
        metas = self.config.meta_servers
        meta = metas[self._meta_index % len(metas)]
        sent_at = self.clock()
        body = {"address": self.address, "send_time_ms": int(time.time() * 1000),
                "replicas": [r.report() for r in self.replicas.values()]}
        try:
            reply = yield self.pool.call(meta, "meta.beacon", body, self.config.beacon_interval_seconds)
        except PegasusError as exc:
            self._beacon_failures += 1
            self._meta_index += 1
            if self._beacon_failures in (1, 10) or self._beacon_failures % 60 == 0:
                log.warn("beacon to meta server {meta} failed ({n} in a row): {err}", meta=meta,
                         n=self._beacon_failures, err=exc)
            return
        if self._beacon_failures:
            log.info("beacon to meta server {meta} succeeded again", meta=meta)
        self._beacon_failures = 0
        self.lease_valid_until = max(self.lease_valid_until, sent_at + self.config.lease_seconds)
        yield self.apply_assignments(reply.get("assignments", []), reply.get("purged_app_ids", []))

    @defer.inlineCallbacks
    def apply_assignments(self, assignments: list[dict], purged_app_ids: list[int]):
        wanted = {}
        for assignment in assignments:
            app_id, pidx = assignment["gpid"]
            wanted[(app_id, pidx)] = assignment
        opening = []
        for gpid, assignment in wanted.items():
            replica = self.replicas.get(gpid)
            if replica is None:
                replica = PartitionReplica(gpid, replica_dir(self.config.data_dir, *gpid), fsync=self.config.fsync,
                                           segment_max_bytes=self.config.wal_segment_max_bytes,
                                           cluster_id=self.config.cluster_id, fail_points=self.fail_points,
                                           pipeline_depth=self.config.wal_pipeline_depth)
                self.replicas[gpid] = replica
                opening.append(replica.open())
            replica.app_name = assignment.get("app_name", "")
            replica.partition_count = assignment.get("partition_count", 0)
            replica.ballot = max(replica.ballot, assignment["ballot"])
        if opening:
            yield defer.DeferredList(opening)
        for gpid, assignment in wanted.items():
            replica = self.replicas[gpid]
            if replica.status in (INACTIVE,) and assignment["primary"] == self.address:
                replica.status = PRIMARY
                log.info("replica {gpid} serves as PRIMARY at ballot {b}", gpid=gpid, b=replica.ballot)
        for gpid in [g for g in self.replicas if g not in wanted]:
            replica = self.replicas.pop(gpid)
            replica.close()
            log.info("replica {gpid} closed: no longer assigned to this server", gpid=gpid)
        for app_id in purged_app_ids:
            for path in (self.config_data_replica_root()).glob(f"{app_id}.*"):
                if tuple(int(x) for x in path.name.split(".")) not in self.replicas:
                    remove_replica_dir(path)
                    log.info("removed data of purged table app_id={id}: {p}", id=app_id, p=str(path))

    def config_data_replica_root(self):
        return replica_dir(self.config.data_dir, 0, 0).parent

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
                due.append(replica.checkpoint(force=True))
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
        replicas = []
        for replica in self.replicas.values():
            entry = {**replica.report(), "app_name": replica.app_name, "storage_dir": str(replica.directory),
                     "checkpoint_decree": replica.checkpoint_decree, "error": replica.error_message}
            if replica.engine is not None:
                entry["stats"] = replica.engine.stats()
            replicas.append(entry)
        return {"address": self.address, "lease_valid": self.lease_valid(), "counters": dict(self.data.counters),
                "lease_remaining_ms": max(0, int((self.lease_valid_until - self.clock()) * 1000)),
                "replicas": replicas}

    def server_info(self) -> dict:
        return {"role": "replica", "address": self.address, "version": __version__, "pid": os.getpid(),
                "uptime_seconds": int(self.clock() - self.started_at), "data_dir": self.config.data_dir,
                "meta_servers": list(self.config.meta_servers), "replica_count": len(self.replicas)}

    def register(self, server: RpcServer) -> None:
        self.data.register(server)
        server.register("replica.status", lambda body, ctx: self.status())
        server.register("node.remote_command", self._rpc_remote_command)
        self.remote_commands.register("server-info", lambda args: self.server_info(), "version, role, uptime, pid")
        self.remote_commands.register("replica.checkpoint", lambda args: self.checkpoint_all(),
                                      "write a checkpoint of every replica now and GC the WAL")

    def _rpc_remote_command(self, body, ctx):
        b = expect(body, {"command": str}, optional={"args": list})
        result = self.remote_commands.run(b["command"], [str(a) for a in b.get("args", [])])
        return defer.maybeDeferred(lambda: result).addCallback(lambda out: {"output": out})

    def start(self) -> None:
        from twisted.internet import reactor

        # WAL fsyncs run in the reactor's thread pool, and more of them in flight means more throughput.
        reactor.suggestThreadPoolSize(64)
        self._beacon_loop.start(self.config.beacon_interval_seconds, now=True)
        self._checkpoint_loop.start(min(5.0, self.config.checkpoint_interval_seconds), now=False)

    @defer.inlineCallbacks
    def stop(self):
        for loop in (self._beacon_loop, self._checkpoint_loop):
            if loop.running:
                loop.stop()
        for replica in self.replicas.values():
            replica.close()
        yield self.pool.close()
