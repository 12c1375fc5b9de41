"""The meta server process: serves the meta RPCs while it leads, and refuses them while it does not.

Each time this process is elected (leadership.py) it builds a fresh ``MetaServer`` from the state store, so a
new leader starts from what the last one persisted, never from an old memory of its own. While it does not
lead, every meta RPC gets ``ERR_INVALID_STATE`` ("not the leader"), on which clients and replica servers try
the next meta server of their list. Remote commands (server-info, fail points) answer either way: they are
about this process.
"""

from __future__ import annotations

import os
import time

from twisted.logger import Logger

from pegasus_node import __version__
from pegasus_node.config import NodeConfig
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.meta.rpc import MetaRpc
from pegasus_node.meta.server import MetaServer
from pegasus_node.meta.state_store import FileStateStore, StateStore
from pegasus_node.remote_commands import RemoteCommands
from pegasus_node.twisted_rpc import RpcServer, expect

log = Logger(namespace="pegasus.meta")


class MetaService:
    def __init__(self, config: NodeConfig, address: str, store: StateStore, leadership, *, on_stop=None) -> None:
        self.config = config
        self.address = address
        self.store = store
        self.leadership = leadership
        self.started_at = time.monotonic()
        self.current: MetaRpc | None = None  # the handlers of this term's MetaServer, while leading
        self.terms = 0  # how often this process was elected
        self._on_stop = on_stop  # closes what the store and the leadership share (the ZooKeeper client)
        self.remote_commands = RemoteCommands()
        self.remote_commands.register("server-info", lambda args: self.server_info(), "version, role, uptime, pid")

    def register(self, server: RpcServer) -> None:
        for method in MetaRpc.METHODS:
            server.register(method, self._served_while_leading(method))
        server.register("node.remote_command", self._rpc_remote_command)
        server.add_http_json("/meta/app/duplication", self._duplication_http)

    def _duplication_http(self, args: dict) -> dict:
        """``/meta/app/duplication?name=T``: table T's duplications (on the leading meta server)."""
        name = (args.get("name") or [""])[0]
        if not name:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, "give the table: /meta/app/duplication?name=TABLE")
        return self._served_while_leading("meta.query_duplication")({"app_name": name}, None)

    def _served_while_leading(self, method: str):
        def serve(body, ctx):
            current = self.current
            if current is None or not self.leadership.is_leading():
                raise PegasusError(ErrorCode.ERR_INVALID_STATE,
                                   f"meta server {self.address} is not the leader; ask another meta server of "
                                   f"the cluster ({','.join(self.config.meta_servers)})")
            return current.handler(method)(body, ctx)
        return serve

    # ----- terms -----

    def _elected(self) -> None:
        try:
            meta = MetaServer(self.config, self.store, address=self.address)
        except (PegasusError, ValueError, KeyError, TypeError) as exc:
            # Leading without the state would be worse than not serving.
            why = exc.message if isinstance(exc, PegasusError) else f"it is malformed ({type(exc).__name__}: {exc})"
            self.leadership.resign(f"cannot load the meta state from {self.store.describe()}: {why}; repair or "
                                   "restore it, then start the meta server again")
            return
        self.terms += 1
        meta.start()
        self.current = MetaRpc(meta)
        meta.record_event("meta_leader", f"meta server {self.address} leads ({self.leadership.describe()})",
                          address=self.address)

    def _deposed(self, why: str) -> None:
        self._end_term()
        log.warn("meta server {address} no longer leads: {why}", address=self.address, why=why)

    def _end_term(self) -> None:
        rpc, self.current = self.current, None
        if rpc is not None:
            rpc.meta.stop()

    # ----- the process -----

    def start(self) -> None:
        """Raises PegasusError when the only meta server cannot load the state."""
        self.leadership.start(self._elected, self._deposed)

    def stop(self) -> None:
        self.leadership.stop()
        self._end_term()
        self.store.close()
        if self._on_stop is not None:
            self._on_stop()

    def server_info(self) -> dict:
        return {"role": "meta", "address": self.address, "version": __version__, "pid": os.getpid(),
                "uptime_seconds": int(time.monotonic() - self.started_at), "state_store": self.store.describe(),
                "leading": self.current is not None and self.leadership.is_leading(), "terms": self.terms}

    def _rpc_remote_command(self, body, ctx):
        b = expect(body, {"command": str}, optional={"args": list})
        return {"output": self.remote_commands.run(b["command"], [str(a) for a in b.get("args", [])])}


def build_meta_service(config: NodeConfig, address: str, reactor) -> MetaService:
    """The meta service for ``config``'s state store: the file store with one meta server, or ZooKeeper with
    leader election among several."""
    from pathlib import Path

    from pegasus_node.meta.leadership import STOP_WAIT_SECONDS, SoleLeadership, ZooKeeperLeadership, bounded

    if config.state_store == "file":
        return MetaService(config, address, FileStateStore(Path(config.data_dir) / "meta_state.json"),
                           SoleLeadership())
    from pegasus_node.meta.zookeeper_store import ZooKeeperStateStore, connect

    client = connect(config.zookeeper_hosts, config.zookeeper_session_timeout_seconds)
    store = ZooKeeperStateStore(client, config.zookeeper_hosts, config.cluster_root)
    leadership = ZooKeeperLeadership(client, config.cluster_root, address, reactor, fence=store.fence_with)

    def close_client() -> None:
        bounded(client.stop, STOP_WAIT_SECONDS)  # ZooKeeper may be gone: the process must exit all the same
        bounded(client.close, STOP_WAIT_SECONDS)

    return MetaService(config, address, store, leadership, on_stop=close_client)
