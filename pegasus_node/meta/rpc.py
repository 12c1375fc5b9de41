"""The meta server's RPC methods: each decodes and checks a request body, calls the MetaServer that decides
(server.py, duplications.py), and shapes the reply (docs/rpc.md). Nothing here decides anything.

MetaService (service.py) serves them only while its process leads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import defer

from pegasus_node.duplication.entry import FAIL_MODES, STATUSES
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.meta.model import AS_AVAILABLE, AS_DROPPED
from pegasus_node.replication.config import ConfigChangeRequest, WireFormatError
from pegasus_node.twisted_rpc import expect

if TYPE_CHECKING:
    from pegasus_node.meta.server import MetaServer

_APP_STATUSES = {"available": (AS_AVAILABLE,), "dropped": (AS_DROPPED,), "all": (AS_AVAILABLE, AS_DROPPED)}


class MetaRpc:
    """The handlers of one MetaServer (one term of a leader): ``handler(method)(body, ctx)``."""

    METHODS = {
        "meta.create_app": "create_app",
        "meta.drop_app": "drop_app",
        "meta.recall_app": "recall_app",
        "meta.list_apps": "list_apps",
        "meta.query_config": "query_config",
        "meta.list_nodes": "list_nodes",
        "meta.cluster_info": "cluster_info",
        "meta.meta_level": "meta_level",
        "meta.beacon": "beacon",
        "meta.events": "events",
        "meta.config_change_request": "config_change_request",
        "meta.add_duplication": "add_duplication",
        "meta.query_duplication": "query_duplication",
        "meta.modify_duplication": "modify_duplication",
    }

    def __init__(self, meta: "MetaServer") -> None:
        self.meta = meta

    def handler(self, method: str):
        return getattr(self, self.METHODS[method])

    def register(self, server) -> None:
        for method in self.METHODS:
            server.register(method, self.handler(method))

    # ----- tables -----

    def create_app(self, body, ctx):
        b = expect(body, {"name": str, "partition_count": int, "replica_count": int}, optional={"envs": dict})
        app = self.meta.create_app(b["name"], b["partition_count"], b["replica_count"], b.get("envs"))
        return {"app": app.to_dict()}

    def drop_app(self, body, ctx):
        b = expect(body, {"name": str}, optional={"reserve_seconds": int})
        return {"app": self.meta.drop_app(b["name"], b.get("reserve_seconds")).to_dict()}

    def recall_app(self, body, ctx):
        b = expect(body, {"app_id": int}, optional={"new_name": str})
        return {"app": self.meta.recall_app(b["app_id"], b.get("new_name") or None).to_dict()}

    def list_apps(self, body, ctx):
        b = expect(body, {}, optional={"status": str})
        wanted = _APP_STATUSES.get(b.get("status", "available"))
        if wanted is None:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, "status must be 'available', 'dropped' or 'all'")
        apps = sorted((a for a in self.meta.apps.values() if a.status in wanted), key=lambda a: a.app_id)
        return {"apps": [a.to_dict() for a in apps]}

    def query_config(self, body, ctx):
        b = expect(body, {"app_name": str})
        app = self.meta._require_app(b["app_name"])
        return {"app": app.to_dict(), "partitions": [self.meta.config_dict(c) for c in self.meta.partitions[app.app_id]]}

    # ----- the cluster -----

    def list_nodes(self, body, ctx):
        return {"nodes": self.meta.node_infos()}

    def cluster_info(self, body, ctx):
        return self.meta.cluster_info()

    def meta_level(self, body, ctx):
        b = expect(body, {}, optional={"level": str})
        return self.meta.set_meta_level(b.get("level"))

    def events(self, body, ctx):
        b = expect(body, {}, optional={"since": int})
        return self.meta.events_since(b.get("since", 0))

    # ----- replica servers -----

    def beacon(self, body, ctx):
        b = expect(body, {"address": str, "replicas": list},
                   optional={"send_time_ms": int, "duplication_progress": list})
        return self.meta.on_beacon(b["address"], b["replicas"], b.get("send_time_ms", 0),
                                   b.get("duplication_progress", []))

    def config_change_request(self, body, ctx):
        try:
            request = ConfigChangeRequest.from_wire(body)
        except WireFormatError as exc:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, str(exc)) from None
        proposal = self.meta.on_config_change_request(request)
        return {"accepted": proposal is not None, "ballot": proposal.new.ballot if proposal else 0}

    # ----- duplications -----

    def add_duplication(self, body, ctx):
        b = expect(body, {"app_name": str, "remote": str}, optional={"fail_mode": str, "full": bool})
        added = defer.ensureDeferred(self.meta.duplications.add_checked(
            b["app_name"], b["remote"], b.get("fail_mode", "slow"), b.get("full", False)))
        return added.addCallback(lambda entry: {"duplication": entry.to_dict()})

    def query_duplication(self, body, ctx):
        b = expect(body, {"app_name": str})
        return self.meta.duplications.describe(b["app_name"])

    def modify_duplication(self, body, ctx):
        b = expect(body, {"app_name": str, "dupid": int}, optional={"status": str, "fail_mode": str})
        status = b.get("status")
        if status is not None and status not in STATUSES:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS,
                               f"status must be DS_LOG (start), DS_PAUSE or DS_REMOVED, not {status!r}")
        if status is None and b.get("fail_mode") is None:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, f"give a status or a fail mode ({FAIL_MODES})")
        entry = self.meta.duplications.modify(b["app_name"], b["dupid"], status=status, fail_mode=b.get("fail_mode"))
        return {"duplication": entry.to_dict()}
