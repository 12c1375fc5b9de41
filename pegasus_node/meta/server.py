"""The meta server's state and decisions: PacificA's configuration manager (its RPC methods are rpc.py's; the
process, serving them while it leads, is service.py's).

It owns tables, partition configurations and replica-server liveness. The decisions (promote, remove, add a
learner, upgrade, balance) are the pure guardian's (guardian.py); this module persists each proposal to the
state store BEFORE announcing it (PacificA rule 2), then pushes it to the servers involved. Replica servers
also get every configuration they belong to in each beacon reply, so a lost push, a restarted replica
server or a restarted meta server converges by itself.
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import dataclass

from twisted.internet import task
from twisted.logger import Logger

from pegasus_node import __version__
from pegasus_node.config import NodeConfig
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.meta import guardian
from pegasus_node.meta.assignment import choose_replicas
from pegasus_node.meta.duplications import MetaDuplications
from pegasus_node.meta.model import AS_AVAILABLE, AS_DROPPED, TABLE_NAME, AppInfo
from pegasus_node.meta.state_store import StateStore
from pegasus_node.replication.config import (
    ConfigChangeRequest, Gpid, PartitionConfiguration, ReplicaReport, WireFormatError,
)
from pegasus_node.twisted_rpc import RpcClientPool

log = Logger(namespace="pegasus.meta")

META_LEVELS = ("freezed", "steady", "lively")
MAX_PARTITIONS = 4096
MAX_EVENTS = 1000


@dataclass
class NodeState:
    address: str
    last_beacon_at: float  # time.monotonic() at the meta server
    ever_seen: bool = False
    declared_dead: bool = False


class MetaServer:
    def __init__(self, config: NodeConfig, store: StateStore, *, address: str, clock=time.monotonic) -> None:
        self.config = config
        self.store = store
        self.address = address
        self.clock = clock
        self.started_at = clock()
        self.apps: dict[int, AppInfo] = {}
        self.partitions: dict[int, list[PartitionConfiguration]] = {}
        # In memory only, from beacons: each server's newest replica reports, and each partition's commit point.
        self.reports: dict[str, dict[Gpid, ReplicaReport]] = {}
        self.committed: dict[Gpid, int] = {}
        self._report_sent_ms: dict[str, int] = {}  # send time of the beacon whose reports we keep, per server
        self.pool: RpcClientPool | None = None
        self.nodes: dict[str, NodeState] = {}
        self.next_app_id = 1
        self.meta_level = config.meta_level
        self.purged_app_ids: list[int] = []
        self.events: collections.deque[dict] = collections.deque(maxlen=MAX_EVENTS)
        self._event_seq = 0
        self.duplications = MetaDuplications(self)
        self._load()
        self._tick_loop = task.LoopingCall(self.tick)
        self._expiry_call = None  # the next _on_expiry, when it comes before the next tick

    # ----- persistence -----

    def _load(self) -> None:
        raw = self.store.get("/meta/next_app_id")
        if raw is not None:
            self.next_app_id = int(raw)
        raw = self.store.get("/meta/meta_level")
        if raw is not None:
            self.meta_level = raw.decode()
        raw = self.store.get("/meta/purged_app_ids")
        if raw is not None:
            self.purged_app_ids = json.loads(raw)
        for app_key in self.store.children("/apps"):
            app = AppInfo.from_dict(json.loads(self.store.get(f"/apps/{app_key}")))
            self.apps[app.app_id] = app
            configs = []
            for pidx in range(app.partition_count):
                data = json.loads(self.store.get(f"/apps/{app_key}/partitions/{pidx}"))
                configs.append(PartitionConfiguration.from_wire(data))
            self.partitions[app.app_id] = configs
        # Servers named in configurations get a full grace period after our start to beacon again.
        for configs in self.partitions.values():
            for config in configs:
                for address in config.everyone:
                    self.nodes.setdefault(address, NodeState(address, self.started_at))
        self.duplications.load()
        log.info("meta state loaded from {store}: {n} tables", store=self.store.describe(), n=len(self.apps))

    def _app_puts(self, app: AppInfo, configs: list[PartitionConfiguration] = ()) -> dict[str, bytes]:
        puts = {f"/apps/{app.app_id}": json.dumps(app.to_dict()).encode()}
        for config in configs:
            puts[self._config_path(config.gpid)] = self._config_state(config)
        return puts

    @staticmethod
    def _config_path(gpid: Gpid) -> str:
        return f"/apps/{gpid[0]}/partitions/{gpid[1]}"

    @staticmethod
    def _config_state(config: PartitionConfiguration) -> bytes:
        state = config.to_wire()
        del state["last_committed_decree"]  # reported by replicas, not part of the configuration
        return json.dumps(state).encode()

    # ----- events (for operators and the live monitor) -----

    def record_event(self, kind: str, message: str, **fields) -> None:
        self._event_seq += 1
        self.events.append({"seq": self._event_seq, "time": time.time(), "kind": kind, "message": message, **fields})
        log.info("event {kind}: {message}", kind=kind, message=message)

    def events_since(self, since: int) -> dict:
        return {"events": [e for e in self.events if e["seq"] > since], "last_seq": self._event_seq}

    # ----- liveness -----

    def is_alive(self, address: str) -> bool:
        node = self.nodes.get(address)
        return node is not None and self.clock() - node.last_beacon_at < self.config.grace_seconds

    def alive_nodes(self) -> list[str]:
        """Servers that beaconed within the grace period: the ones new tables may be placed on."""
        return sorted(a for a, n in self.nodes.items() if n.ever_seen and self.is_alive(a))

    def presumed_alive(self) -> frozenset[str]:
        """For the guardian: also the servers named in configurations that have not beaconed since our start
        but whose grace period has not run out, so a meta restart causes no failover by itself."""
        return frozenset(a for a in self.nodes if self.is_alive(a))

    # ----- tables -----

    def _find_app(self, name: str, status: str = AS_AVAILABLE) -> AppInfo | None:
        for app in self.apps.values():
            if app.name == name and app.status == status:
                return app
        return None

    def _require_app(self, name: str) -> AppInfo:
        app = self._find_app(name)
        if app is None:
            raise PegasusError(ErrorCode.ERR_APP_NOT_EXIST, f"table {name!r} does not exist ('ls' lists tables)")
        return app

    def create_app(self, name: str, partition_count: int, replica_count: int, envs: dict | None = None) -> AppInfo:
        if not TABLE_NAME.match(name):
            raise PegasusError(
                ErrorCode.ERR_INVALID_PARAMETERS,
                f"invalid table name {name!r}: use letters, digits, '_', '.', '-', starting with a letter or '_'",
            )
        if not 1 <= partition_count <= MAX_PARTITIONS:
            raise PegasusError(
                ErrorCode.ERR_INVALID_PARAMETERS, f"partition count must be in [1, {MAX_PARTITIONS}], got {partition_count}"
            )
        if replica_count < 1:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, f"replica count must be >= 1, got {replica_count}")
        if self._find_app(name) is not None:
            raise PegasusError(ErrorCode.ERR_APP_EXIST, f"table {name!r} already exists")
        alive = self.alive_nodes()
        if len(alive) < replica_count:
            raise PegasusError(
                ErrorCode.ERR_NOT_ENOUGH_MEMBER,
                f"table {name!r} needs {replica_count} replica servers but {len(alive)} are alive "
                "('nodes' lists them); start more or lower the replica count",
            )
        app = AppInfo(
            app_id=self.next_app_id,
            name=name,
            partition_count=partition_count,
            replica_count=replica_count,
            status=AS_AVAILABLE,
            create_time=time.time(),
            envs=dict(envs or {}),
        )
        configs = []
        load = self._replica_load()
        for pidx in range(partition_count):
            members = choose_replicas(alive, replica_count, load)
            configs.append(PartitionConfiguration((app.app_id, pidx), ballot=1, primary=members[0],
                                                  secondaries=tuple(members[1:])))
        puts = self._app_puts(app, configs)
        puts["/meta/next_app_id"] = str(app.app_id + 1).encode()
        self.store.apply(puts)
        self.next_app_id = app.app_id + 1
        self.apps[app.app_id] = app
        self.partitions[app.app_id] = configs
        self.record_event("table_created", f"created table {name} (app_id {app.app_id}, {partition_count} "
                          f"partitions, {replica_count} replicas)", app_id=app.app_id)
        return app

    def _replica_load(self) -> dict[str, list[int]]:
        """address -> [primary count, replica count] over available tables."""
        load: dict[str, list[int]] = {}
        for app in self.apps.values():
            if app.status != AS_AVAILABLE:
                continue
            for config in self.partitions[app.app_id]:
                if config.primary:
                    load.setdefault(config.primary, [0, 0])[0] += 1
                for address in config.members:
                    load.setdefault(address, [0, 0])[1] += 1
        return load

    def drop_app(self, name: str, reserve_seconds: int | None) -> AppInfo:
        app = self._require_app(name)
        reserve = self.config.hold_seconds_for_dropped_app if reserve_seconds is None else reserve_seconds
        if reserve < 0:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, f"reserve seconds must be >= 0, got {reserve}")
        dropped = AppInfo(**{**app.to_dict(), "status": AS_DROPPED, "drop_time": time.time(),
                             "expire_time": time.time() + reserve})
        self.store.apply(self._app_puts(dropped))
        self.apps[app.app_id] = dropped
        self.record_event("table_dropped", f"dropped table {name} (app_id {app.app_id}), recallable for {reserve} s",
                          app_id=app.app_id)
        return dropped

    def recall_app(self, app_id: int, new_name: str | None) -> AppInfo:
        app = self.apps.get(app_id)
        if app is None or app.status != AS_DROPPED:
            raise PegasusError(
                ErrorCode.ERR_APP_NOT_EXIST,
                f"no dropped table with app_id {app_id} ('ls --drop' lists recallable tables)",
            )
        name = new_name or app.name
        if self._find_app(name) is not None:
            raise PegasusError(
                ErrorCode.ERR_APP_EXIST, f"a table named {name!r} exists; recall under a new name: recall {app_id} NEW_NAME"
            )
        if not TABLE_NAME.match(name):
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, f"invalid table name {name!r}")
        recalled = AppInfo(**{**app.to_dict(), "status": AS_AVAILABLE, "name": name, "drop_time": 0.0,
                              "expire_time": 0.0})
        self.store.apply(self._app_puts(recalled))
        self.apps[app_id] = recalled
        self.record_event("table_recalled", f"recalled table app_id {app_id} as {name}", app_id=app_id)
        return recalled

    def tick(self) -> None:
        """Periodic duties: declare servers dead after the grace period, let the guardian cure and balance
        partitions, purge expired dropped tables."""
        self._declare_dead()
        self._guarded(self.run_guardian)
        self._guarded(self.purge_expired_apps)
        self._guarded(self.duplications.save_progress)
        self._arm_expiry_check()

    def _guarded(self, duty) -> None:
        """A duty whose state store write failed (a full disk, ZooKeeper away, leadership lost) is tried again
        next tick: nothing was changed or announced, and the periodic duties must not stop for good."""
        try:
            duty()
        except PegasusError as exc:
            log.error("meta duty {duty} not done, tried again next tick: {err}", duty=duty.__name__, err=exc.message)

    def _declare_dead(self) -> bool:
        """Mark the servers whose grace period ran out; True when there were any."""
        newly_dead = False
        for node in list(self.nodes.values()):
            if not node.declared_dead and not self.is_alive(node.address):
                node.declared_dead = newly_dead = True
                self.record_event("node_dead", f"replica server {node.address} declared dead: no beacon for "
                                  f"{self.config.grace_seconds:g} s", address=node.address)
        return newly_dead

    def _arm_expiry_check(self) -> None:
        """Wake up when the next server's grace period runs out, if that comes before the next tick: the
        failover then starts at once, not up to a tick later (a tick is a beacon interval, up to 1 s)."""
        if self._expiry_call is not None and self._expiry_call.active():
            self._expiry_call.cancel()
        self._expiry_call = None
        expiries = [n.last_beacon_at + self.config.grace_seconds for n in self.nodes.values() if not n.declared_dead]
        if not expiries or not self._tick_loop.running:
            return
        delay = max(0.0, min(expiries) - self.clock())
        if delay < self._tick_loop.interval:
            # A millisecond late: alive means strictly within the grace period.
            self._expiry_call = self._tick_loop.clock.callLater(delay + 0.001, self._on_expiry)

    def _on_expiry(self) -> None:
        self._expiry_call = None
        if self._declare_dead():
            self._guarded(self.run_guardian)
        self._arm_expiry_check()

    def purge_expired_apps(self) -> None:
        now = time.time()
        expired = [a for a in self.apps.values() if a.status == AS_DROPPED and a.expire_time <= now]
        if not expired:
            return
        purged = self.purged_app_ids + [a.app_id for a in expired]
        self.store.apply({"/meta/purged_app_ids": json.dumps(purged).encode()}, [f"/apps/{a.app_id}" for a in expired])
        self.purged_app_ids = purged
        for app in expired:
            del self.apps[app.app_id]
            del self.partitions[app.app_id]
            self.duplications.entries.pop(app.app_id, None)
            self.record_event("table_purged", f"purged dropped table {app.name} (app_id {app.app_id})",
                              app_id=app.app_id)

    # ----- beacons -----

    def on_beacon(self, address: str, replicas: list[dict], send_time_ms: int = 0,
                  duplication_progress: list = ()) -> dict:
        node = self.nodes.get(address)
        if node is None:
            node = self.nodes[address] = NodeState(address, self.clock())
            self.record_event("node_alive", f"replica server {address} joined", address=address)
        elif not node.ever_seen or not self.is_alive(address):
            self.record_event("node_alive", f"replica server {address} is alive", address=address)
        node.last_beacon_at = self.clock()
        node.ever_seen = True
        node.declared_dead = False
        previous_send = self._report_sent_ms.get(address, -1)
        if send_time_ms < previous_send:
            # An older beacon overtaken by a newer one: its reports are stale; still answer it.
            return self._beacon_reply(address, self.reports.get(address))
        self._report_sent_ms[address] = send_time_ms
        reports = {}
        for raw in replicas:
            try:
                report = ReplicaReport.from_wire(raw)
            except WireFormatError as exc:
                log.warn("ignoring a malformed replica report from {a}: {e}", a=address, e=exc)
                continue
            reports[report.gpid] = report
            config = self._config(report.gpid)
            if config is not None and config.primary == address:
                self.committed[report.gpid] = report.last_committed_decree
        self.reports[address] = reports
        self.duplications.on_progress(address, list(duplication_progress))
        return self._beacon_reply(address, reports)

    def _beacon_reply(self, address: str, reports: dict | None) -> dict:
        # available_app_ids lets a replica server tell a table moved entirely off it (its directories are
        # garbage) from a dropped one, which may still be recalled (replica/garbage.py).
        return {"assignments": self.assignments_for(address, reports), "purged_app_ids": list(self.purged_app_ids),
                "available_app_ids": sorted(a.app_id for a in self.apps.values() if a.status == AS_AVAILABLE),
                "duplications": self.duplications.for_beacon()}

    def _config(self, gpid: Gpid) -> PartitionConfiguration | None:
        configs = self.partitions.get(gpid[0])
        app = self.apps.get(gpid[0])
        if configs is None or app is None or app.status != AS_AVAILABLE or not 0 <= gpid[1] < len(configs):
            return None
        return configs[gpid[1]]

    def _available_configs(self) -> dict[Gpid, PartitionConfiguration]:
        return {c.gpid: c for app in self.apps.values() if app.status == AS_AVAILABLE
                for c in self.partitions[app.app_id]}

    def config_dict(self, config: PartitionConfiguration) -> dict:
        app = self.apps[config.gpid[0]]
        return {**config.to_wire(), "last_committed_decree": self.committed.get(config.gpid, 0),
                "app_name": app.name, "partition_count": app.partition_count}

    def assignments_for(self, address: str, reports: dict | None = None) -> list[dict]:
        configs = guardian.assignments_for(address, self._available_configs().values(), list(reports or ()))
        return [self.config_dict(c) for c in configs]

    # ----- configuration changes (the guardian decides, we persist, then announce) -----

    def cluster_view(self) -> guardian.ClusterView:
        try:
            level = guardian.MetaLevel(self.meta_level)
        except ValueError:
            level = guardian.MetaLevel.STEADY
        replica_count = {a.app_id: a.replica_count for a in self.apps.values() if a.status == AS_AVAILABLE}
        return guardian.ClusterView(self._available_configs(), replica_count, self.presumed_alive(),
                                    self.reports, level)

    def run_guardian(self) -> list[guardian.Proposal]:
        applied = []
        for proposal in guardian.propose(self.cluster_view()):
            if self.apply_proposal(proposal):
                applied.append(proposal)
        return applied

    def on_config_change_request(self, request: ConfigChangeRequest) -> guardian.Proposal | None:
        proposal = guardian.handle_request(self.cluster_view(), request)
        if proposal is not None and self.apply_proposal(proposal):
            return proposal
        return None

    def apply_proposal(self, proposal: guardian.Proposal) -> bool:
        gpid, new = proposal.new.gpid, proposal.new
        if self._config(gpid) != proposal.old:
            return False  # decided on a view that has changed since
        self.store.put(self._config_path(gpid), self._config_state(new))  # persist first ...
        self.partitions[gpid[0]][gpid[1]] = new
        for address in new.everyone:
            self.nodes.setdefault(address, NodeState(address, self.clock()))
        self.record_event("config_changed", f"{gpid[0]}.{gpid[1]} ballot {new.ballot}: {proposal.reason}",
                          gpid=list(gpid), ballot=new.ballot, primary=new.primary,
                          secondaries=list(new.secondaries), learners=list(new.learners))
        self._push(proposal)  # ... then announce
        return True

    def _push(self, proposal: guardian.Proposal) -> None:
        if self.pool is None:
            return
        body = {"configs": [self.config_dict(proposal.new)]}
        for address in sorted(set(proposal.old.everyone + proposal.new.everyone)):
            if self.is_alive(address):
                self.pool.call(address, "replica.config_update", body, 2.0).addErrback(lambda f: None)

    # ----- views -----

    def node_infos(self) -> list[dict]:
        load = self._replica_load()
        now = self.clock()
        infos = []
        for address in sorted(self.nodes):
            node = self.nodes[address]
            age = now - node.last_beacon_at
            primaries, replicas = load.get(address, [0, 0])
            infos.append({
                "address": address,
                "status": "alive" if node.ever_seen and self.is_alive(address) else "unalive",
                "last_beacon_age_ms": int(age * 1000) if node.ever_seen else -1,
                "lease_remaining_ms": max(0, int((self.config.lease_seconds - age) * 1000)) if node.ever_seen else 0,
                "primary_count": primaries,
                "secondary_count": replicas - primaries,
            })
        return infos

    def cluster_info(self) -> dict:
        nodes = self.node_infos()
        return {
            "meta_servers": list(self.config.meta_servers),
            "primary_meta": self.address,
            "state_store": self.store.describe(),
            "meta_level": self.meta_level,
            "node_count": len(nodes),
            "alive_node_count": sum(1 for n in nodes if n["status"] == "alive"),
            "app_count": sum(1 for a in self.apps.values() if a.status == AS_AVAILABLE),
            "dropped_app_count": sum(1 for a in self.apps.values() if a.status == AS_DROPPED),
            "version": __version__,
            "uptime_seconds": int(self.clock() - self.started_at),
            "beacon_interval_seconds": self.config.beacon_interval_seconds,
            "lease_seconds": self.config.lease_seconds,
            "grace_seconds": self.config.grace_seconds,
        }

    def set_meta_level(self, level: str | None) -> dict:
        old = self.meta_level
        if level is not None:
            if level not in META_LEVELS:
                raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS,
                                   f"meta level must be one of {', '.join(META_LEVELS)}, not {level!r}")
            self.store.put("/meta/meta_level", level.encode())
            self.meta_level = level
        return {"level": self.meta_level, "old_level": old}

    def start(self) -> None:
        self.pool = RpcClientPool()
        self._tick_loop.start(min(1.0, self.config.beacon_interval_seconds), now=False)

    def stop(self) -> None:
        if self._tick_loop.running:
            self._tick_loop.stop()
        if self._expiry_call is not None and self._expiry_call.active():
            self._expiry_call.cancel()
        if self.pool is not None:
            self.pool.close()
