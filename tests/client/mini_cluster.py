"""A small real cluster for the client tests: RpcServers on 127.0.0.1 serving the docs/rpc.md methods the
client uses, over real in-memory storage (``pegasus_node.storage`` memtables, ops and reads).

It is not PacificA: one memtable per partition is shared by the replicas that host it (replication is
instantaneous), and the cluster's configuration is the single truth that the meta servers report and the
replica servers enforce (a replica answers ERR_OBJECT_NOT_FOUND for a partition it does not host and
ERR_INVALID_STATE when it is not the primary, except for reads marked ``backup_request`` or ``follower_read``:
with one memtable per partition, every replica is as fresh as the primary). Tests change
the configuration (move a primary, take it away, stop a server) and inject error replies, to drive the
client's routing, refresh and retry logic against real sockets.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pegasus_node.base.keys import encode_key
from pegasus_node.base.timetag import make_timetag
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.storage import reads
from pegasus_node.storage.memtable import Memtable
from pegasus_node.storage.operations import (
    apply_writes,
    cas_op,
    del_op,
    expire_ts_from_ttl,
    incr_expire_from_ttl,
    incr_op,
    multi_del_op,
    multi_put_op,
    put_op,
)
from pegasus_node.twisted_rpc import RpcServer, expect

GPID = {"gpid": list}
KEY = {"gpid": list, "hash_key": bytes, "sort_key": bytes}
READ_OPTIONAL = {"backup_request": bool, "follower_read": bool}


@dataclass
class Partition:
    primary: str
    secondaries: list[str]
    ballot: int = 1


@dataclass
class App:
    app_id: int
    name: str
    partitions: list[Partition]
    stores: list[Memtable] = field(default_factory=list)

    def info(self) -> dict:
        return {
            "app_id": self.app_id,
            "name": self.name,
            "partition_count": len(self.partitions),
            "replica_count": 1 + len(self.partitions[0].secondaries),
            "status": "AS_AVAILABLE",
            "create_time": 0,
            "drop_time": 0,
            "expire_time": 0,
            "envs": {},
        }


class ReplyFaults:
    """Server fail points (pegasus_node.twisted_rpc.fail_points): delay or drop replies of a method.

    ``actions[method]`` is an action for every reply, or a list of actions for the next replies, one each.
    """

    def __init__(self) -> None:
        self.actions: dict[str, Any] = {}

    def before_send(self, kind: str, address: str, method: str) -> Any:
        action = self.actions.get(method)
        if isinstance(action, list):
            return action.pop(0) if action else None
        return action


class MiniCluster:
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.apps: dict[str, App] = {}
        self.metas: list[MiniMeta] = []
        self.replicas: list[MiniReplica] = []
        self._next_app_id = 1

    def start(self, *, metas: int = 1, replicas: int = 3) -> MiniCluster:
        for _ in range(metas):
            self.metas.append(MiniMeta(self))
        for _ in range(replicas):
            self.replicas.append(MiniReplica(self))
        return self

    @property
    def meta_list(self) -> str:
        return ",".join(m.address for m in self.metas)

    def replica(self, address: str) -> MiniReplica:
        return next(r for r in self.replicas if r.address == address)

    def create_table(self, name: str, partition_count: int = 4, replica_count: int = 3) -> App:
        if name in self.apps:
            raise PegasusError(ErrorCode.ERR_APP_EXIST, f"table {name!r} exists")
        addresses = [r.address for r in self.replicas]
        if replica_count > len(addresses):
            raise PegasusError(ErrorCode.ERR_NOT_ENOUGH_MEMBER, "not enough replica servers")
        partitions = []
        for p in range(partition_count):
            members = [addresses[(p + k) % len(addresses)] for k in range(replica_count)]
            partitions.append(Partition(members[0], members[1:]))
        app = App(self._next_app_id, name, partitions, [Memtable() for _ in range(partition_count)])
        self._next_app_id += 1
        self.apps[name] = app
        return app

    def app_by_id(self, app_id: int) -> App | None:
        return next((a for a in self.apps.values() if a.app_id == app_id), None)

    def move_primary(self, name: str, index: int, new_primary: str) -> None:
        """The new primary was a secondary (or nothing); the old primary becomes a secondary. Ballot + 1."""
        part = self.apps[name].partitions[index]
        old = part.primary
        part.secondaries = [a for a in part.secondaries if a != new_primary] + ([old] if old else [])
        part.primary = new_primary
        part.ballot += 1

    def clear_primary(self, name: str, index: int) -> str:
        part = self.apps[name].partitions[index]
        old, part.primary = part.primary, ""
        part.ballot += 1
        return old

    def role(self, address: str, gpid: list) -> str | None:
        app = self.app_by_id(gpid[0])
        if app is None or not 0 <= gpid[1] < len(app.partitions):
            return None
        part = app.partitions[gpid[1]]
        if part.primary == address:
            return "primary"
        return "secondary" if address in part.secondaries else None

    async def stop(self) -> None:
        for server in [*self.metas, *self.replicas]:
            await server.server.stop()


class _Node:
    def __init__(self, cluster: MiniCluster, role: str) -> None:
        self.cluster = cluster
        self.faults = ReplyFaults()
        self.server = RpcServer(role, reactor=cluster.reactor, fail_points=self.faults)
        port = self.server.listen(0, "127.0.0.1")
        self.address = f"127.0.0.1:{port.getHost().port}"
        self.calls: defaultdict[str, int] = defaultdict(int)


class MiniMeta(_Node):
    def __init__(self, cluster: MiniCluster) -> None:
        super().__init__(cluster, "meta")
        self.leader = True
        self.level = "steady"
        for name in ("query_config", "list_apps", "create_app", "list_nodes", "cluster_info", "meta_level"):
            self.server.register(f"meta.{name}", self._as_leader(name, getattr(self, name)))

    def _as_leader(self, name: str, fn: Any) -> Any:
        def handle(body: Any, ctx: Any) -> Any:
            self.calls[name] += 1
            if not self.leader:
                raise PegasusError(ErrorCode.ERR_INVALID_STATE, f"{self.address} is not the leader")
            return fn(body)

        return handle

    def query_config(self, body: Any) -> dict:
        name = expect(body, {"app_name": str})["app_name"]
        app = self.cluster.apps.get(name)
        if app is None:
            raise PegasusError(ErrorCode.ERR_OBJECT_NOT_FOUND, f"table {name!r} not found")
        partitions = [
            {
                "gpid": [app.app_id, i],
                "ballot": p.ballot,
                "primary": p.primary,
                "secondaries": list(p.secondaries),
                "learners": [],
                "last_committed_decree": 0,
            }
            for i, p in enumerate(app.partitions)
        ]
        return {"app": app.info(), "partitions": partitions}

    def list_apps(self, body: Any) -> dict:
        expect(body, {}, optional={"status": str})
        return {"apps": [a.info() for a in self.cluster.apps.values()]}

    def create_app(self, body: Any) -> dict:
        b = expect(body, {"name": str, "partition_count": int, "replica_count": int}, optional={"envs": dict})
        return {"app": self.cluster.create_table(b["name"], b["partition_count"], b["replica_count"]).info()}

    def list_nodes(self, body: Any) -> dict:
        nodes = [{"address": r.address, "status": "alive"} for r in self.cluster.replicas]
        return {"nodes": nodes}

    def cluster_info(self, body: Any) -> dict:
        return {"meta_servers": [m.address for m in self.cluster.metas], "primary_meta": self.address}

    def meta_level(self, body: Any) -> dict:
        b = expect(body, {}, optional={"level": str})
        old = self.level
        self.level = b.get("level", old)
        return {"level": self.level, "old_level": old}


class MiniReplica(_Node):
    def __init__(self, cluster: MiniCluster) -> None:
        super().__init__(cluster, "replica")
        # method -> error codes to answer with, one per request: before executing, or after it.
        self.fail_before: defaultdict[str, list[ErrorCode]] = defaultdict(list)
        self.fail_after: defaultdict[str, list[ErrorCode]] = defaultdict(list)
        self.backup_reads = 0
        self.follower_reads = 0
        writes = ("put", "remove", "multi_put", "multi_remove", "incr", "check_and_set")
        data_reads = ("get", "multi_get", "sortkey_count", "ttl", "exist", "scan")
        for name in writes + data_reads:
            self.server.register(f"rrdb.{name}", self._handler(name, getattr(self, name), name in writes))
        self.server.register("replica.status", self.status)

    def _handler(self, name: str, fn: Any, write: bool) -> Any:
        def handle(body: Any, ctx: Any) -> Any:
            self.calls[name] += 1
            gpid = expect(body, GPID)["gpid"]
            if self.fail_before[name]:
                raise PegasusError(self.fail_before[name].pop(0), f"injected before {name}")
            role = self.cluster.role(self.address, gpid)
            if role is None:
                raise PegasusError(ErrorCode.ERR_OBJECT_NOT_FOUND, f"{self.address} does not host {gpid}")
            backup = not write and body.get("backup_request") is True
            follower = not write and body.get("follower_read") is True
            if role != "primary" and not (backup or follower):
                raise PegasusError(ErrorCode.ERR_INVALID_STATE, f"{self.address} is not the primary of {gpid}")
            if backup:
                self.backup_reads += 1
            if follower and role != "primary":
                self.follower_reads += 1
            result = fn(self.cluster.app_by_id(gpid[0]).stores[gpid[1]], body)
            if self.fail_after[name]:
                raise PegasusError(self.fail_after[name].pop(0), f"injected after {name}")
            return result

        return handle

    def status(self, body: Any, ctx: Any) -> dict:
        replicas = []
        for app in self.cluster.apps.values():
            for i in range(len(app.partitions)):
                role = self.cluster.role(self.address, [app.app_id, i])
                if role is not None:
                    replicas.append({"gpid": [app.app_id, i], "status": role.upper(), "app_name": app.name})
        return {"address": self.address, "replicas": replicas}

    # -- writes ----------------------------------------------------------------------------------------

    @staticmethod
    def _apply(store: Memtable, op: dict) -> dict:
        now_us = time.time_ns() // 1000
        (result,) = apply_writes(store, [op], now_s=now_us // 1_000_000, timetag=make_timetag(now_us, 1))
        if "error" in result:
            raise PegasusError(result["error"], result.get("message", ""))
        return {**result, "decree": 1}

    def put(self, store: Memtable, body: Any) -> dict:
        b = expect(body, {**KEY, "value": bytes, "ttl_seconds": int})
        expire = expire_ts_from_ttl(b["ttl_seconds"], int(time.time()))
        return self._apply(store, put_op(b["hash_key"], b["sort_key"], b["value"], expire))

    def remove(self, store: Memtable, body: Any) -> dict:
        b = expect(body, KEY)
        return self._apply(store, del_op(b["hash_key"], b["sort_key"]))

    def multi_put(self, store: Memtable, body: Any) -> dict:
        b = expect(body, {**GPID, "hash_key": bytes, "kvs": list, "ttl_seconds": int})
        expire = expire_ts_from_ttl(b["ttl_seconds"], int(time.time()))
        return self._apply(store, multi_put_op(b["hash_key"], [tuple(kv) for kv in b["kvs"]], expire))

    def multi_remove(self, store: Memtable, body: Any) -> dict:
        b = expect(body, {**GPID, "hash_key": bytes, "sort_keys": list})
        return self._apply(store, multi_del_op(b["hash_key"], b["sort_keys"]))

    def incr(self, store: Memtable, body: Any) -> dict:
        b = expect(body, {**KEY, "increment": int, "ttl_seconds": int})
        expire = incr_expire_from_ttl(b["ttl_seconds"], int(time.time()))
        return self._apply(store, incr_op(b["hash_key"], b["sort_key"], b["increment"], expire))

    def check_and_set(self, store: Memtable, body: Any) -> dict:
        b = expect(
            body,
            {
                **GPID,
                "hash_key": bytes,
                "check_sort_key": bytes,
                "check_type": int,
                "check_operand": bytes,
                "set_sort_key": bytes,
                "set_value": bytes,
                "ttl_seconds": int,
                "return_check_value": bool,
            },
        )
        expire = expire_ts_from_ttl(b["ttl_seconds"], int(time.time()))
        op = cas_op(
            b["hash_key"],
            b["check_sort_key"],
            b["check_type"],
            b["check_operand"],
            b["set_sort_key"],
            b["set_value"],
            expire,
            b["return_check_value"],
        )
        return self._apply(store, op)

    # -- reads -----------------------------------------------------------------------------------------

    def get(self, store: Memtable, body: Any) -> dict:
        b = expect(body, KEY, optional=READ_OPTIONAL)
        record = store.get_live(encode_key(b["hash_key"], b["sort_key"]), time.time())
        return {"value": None if record is None else record.value}

    def exist(self, store: Memtable, body: Any) -> dict:
        b = expect(body, KEY, optional=READ_OPTIONAL)
        return {"exists": store.get_live(encode_key(b["hash_key"], b["sort_key"]), time.time()) is not None}

    def ttl(self, store: Memtable, body: Any) -> dict:
        b = expect(body, KEY, optional=READ_OPTIONAL)
        now = time.time()
        record = store.get_live(encode_key(b["hash_key"], b["sort_key"]), now)
        if record is None:
            return {"exists": False, "ttl_seconds": -1}
        return {"exists": True, "ttl_seconds": -1 if record.expire_ts == 0 else int(record.expire_ts - now)}

    def sortkey_count(self, store: Memtable, body: Any) -> dict:
        b = expect(body, {**GPID, "hash_key": bytes}, optional=READ_OPTIONAL)
        return {"count": reads.sortkey_count(store, b["hash_key"], time.time())}

    def multi_get(self, store: Memtable, body: Any) -> dict:
        b = expect(
            body,
            {**GPID, "hash_key": bytes},
            optional={
                "sort_keys": list,
                "start_sort_key": bytes,
                "stop_sort_key": bytes,
                "start_inclusive": bool,
                "stop_inclusive": bool,
                "max_kv_count": int,
                "max_kv_size": int,
                "no_value": bool,
                **READ_OPTIONAL,
            },
        )
        kvs, complete = reads.multi_get(
            store,
            b["hash_key"],
            sort_keys=b.get("sort_keys"),
            start_sk=b.get("start_sort_key", b""),
            stop_sk=b.get("stop_sort_key", b""),
            start_inclusive=b.get("start_inclusive", True),
            stop_inclusive=b.get("stop_inclusive", False),
            max_kv_count=b.get("max_kv_count", -1),
            max_kv_size=b.get("max_kv_size", -1),
            no_value=b.get("no_value", False),
            now=time.time(),
        )
        return {"kvs": [list(kv) for kv in kvs], "complete": complete}

    def scan(self, store: Memtable, body: Any) -> dict:
        b = expect(
            body,
            {**GPID, "start_key": bytes, "stop_key": bytes, "start_inclusive": bool, "stop_inclusive": bool,
             "batch_size": int},
            optional={"no_value": bool, **READ_OPTIONAL},
        )
        kvs, next_key = reads.scan(
            store,
            b["start_key"],
            b["stop_key"],
            b["start_inclusive"],
            b["stop_inclusive"],
            b["batch_size"],
            b.get("no_value", False),
            time.time(),
        )
        return {"kvs": [list(kv) for kv in kvs], "next_start_key": next_key}
