"""Cluster administration: the meta server's table and node methods, and a node's status and commands.

Every method returns a Deferred firing with the reply dict of the RPC named in docs/rpc.md. Calls to the
meta server fail over across the meta list like the data client; changes (create, drop, recall, setting
the level) are not retried after an ambiguous failure (:class:`AmbiguousResultError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed

from pegasus_node.client.deferreds import returns_deferred
from pegasus_node.client.errors import InvalidArgumentError, TableNotFoundError
from pegasus_node.client.meta_session import MetaSession
from pegasus_node.client.validation import address_arg, int_arg, timeout_arg
from pegasus_node.errors import ErrorCode, PegasusError

APP_STATUSES = ("available", "dropped", "all")
META_LEVELS = ("steady", "lively", "freezed")
DEFAULT_ADMIN_TIMEOUT_SECONDS = 10.0
_TABLE_MISSING = frozenset({ErrorCode.ERR_APP_NOT_EXIST, ErrorCode.ERR_OBJECT_NOT_FOUND})


def _name_arg(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("table name must be a non-empty str")
    return name


def _choice_arg(what: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidArgumentError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return value


class MetaAdmin:
    """``MetaAdmin(meta_list, reactor=None, timeout=10.0, pool=None)``; or ``Client.admin`` to share a client's."""

    def __init__(
        self,
        meta_list: str | list[str],
        *,
        reactor: Any = None,
        timeout: float = DEFAULT_ADMIN_TIMEOUT_SECONDS,
        pool: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self._owns_pool = pool is None
        if pool is None:
            from pegasus_node.twisted_rpc import RpcClientPool

            pool = RpcClientPool(reactor)
        self._pool = pool
        self._meta = MetaSession(meta_list, pool=pool, clock=reactor, timeout=timeout)

    @classmethod
    def over(cls, meta: MetaSession, pool: Any) -> MetaAdmin:
        """An admin sharing an existing meta session and pool (closing it closes neither)."""
        admin = cls.__new__(cls)
        admin._owns_pool = False
        admin._pool = pool
        admin._meta = meta
        return admin

    @property
    def meta_servers(self) -> list[str]:
        return list(self._meta.addresses)

    async def _meta_call(
        self, method: str, body: dict, timeout: float | None, *, idempotent: bool = True, table: str | None = None
    ) -> Any:
        try:
            return await self._meta.call(method, body, timeout=timeout, idempotent=idempotent)
        except PegasusError as e:
            if table is not None and e.code in _TABLE_MISSING:
                raise TableNotFoundError(table, e.message) from None
            raise

    # -- tables ----------------------------------------------------------------------------------------

    @returns_deferred
    async def list_apps(self, status: str = "available", *, timeout: float | None = None) -> dict:
        """``{apps: [AppInfo]}``; ``status``: available, dropped or all."""
        return await self._meta_call("meta.list_apps", {"status": _choice_arg("status", status, APP_STATUSES)}, timeout)

    @returns_deferred
    async def create_app(
        self,
        name: str,
        partition_count: int = 8,
        replica_count: int = 3,
        envs: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict:
        """``{app: AppInfo}``."""
        body: dict[str, Any] = {
            "name": _name_arg(name),
            "partition_count": int_arg("partition_count", partition_count, minimum=1),
            "replica_count": int_arg("replica_count", replica_count, minimum=1),
        }
        if envs is not None:
            if not isinstance(envs, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in envs.items()
            ):
                raise InvalidArgumentError("envs must be a dict of str to str")
            body["envs"] = dict(envs)
        return await self._meta_call("meta.create_app", body, timeout, idempotent=False)

    @returns_deferred
    async def drop_app(self, name: str, reserve_seconds: int | None = None, *, timeout: float | None = None) -> dict:
        """``{app: AppInfo}``; the table can be recalled for ``reserve_seconds`` (server default: 7 days)."""
        body: dict[str, Any] = {"name": _name_arg(name)}
        if reserve_seconds is not None:
            body["reserve_seconds"] = int_arg("reserve_seconds", reserve_seconds, minimum=0)
        return await self._meta_call("meta.drop_app", body, timeout, idempotent=False, table=name)

    @returns_deferred
    async def recall_app(self, app_id: int, new_name: str | None = None, *, timeout: float | None = None) -> dict:
        """``{app: AppInfo}``: bring back a dropped table, optionally under a new name."""
        body: dict[str, Any] = {"app_id": int_arg("app_id", app_id, minimum=0)}
        if new_name is not None:
            body["new_name"] = _name_arg(new_name)
        return await self._meta_call("meta.recall_app", body, timeout, idempotent=False)

    @returns_deferred
    async def query_config(self, name: str, *, timeout: float | None = None) -> dict:
        """``{app: AppInfo, partitions: [PartitionConfig]}``."""
        return await self._meta_call("meta.query_config", {"app_name": _name_arg(name)}, timeout, table=name)

    # -- duplication (seed 002) -------------------------------------------------------------------------

    @returns_deferred
    async def add_duplication(self, name: str, remote_cluster: str, *, fail_mode: str = "slow", full: bool = False,
                              timeout: float | None = None) -> dict:
        """``{duplication}``: ship table ``name``'s writes from now on to the same table on ``remote_cluster`` (a
        name in the meta servers' [pegasus.clusters]); ``full`` (copy the existing data first) is not built."""
        if not isinstance(remote_cluster, str) or not remote_cluster:
            raise InvalidArgumentError("remote_cluster must be a cluster name from [pegasus.clusters]")
        body = {"app_name": _name_arg(name), "remote": remote_cluster, "fail_mode": str(fail_mode),
                "full": bool(full)}
        return await self._meta_call("meta.add_duplication", body, timeout, idempotent=False)

    @returns_deferred
    async def query_duplication(self, name: str, *, timeout: float | None = None) -> dict:
        """``{app_name, app_id, duplications: [...]}``, each with its status, fail mode and progress."""
        return await self._meta_call("meta.query_duplication", {"app_name": _name_arg(name)}, timeout)

    @returns_deferred
    async def modify_duplication(self, name: str, dupid: int, *, status: str | None = None,
                                 fail_mode: str | None = None, timeout: float | None = None) -> dict:
        """``{duplication}``: ``status`` DS_PAUSE, DS_LOG (start again) or DS_REMOVED; or a new ``fail_mode``."""
        body: dict[str, Any] = {"app_name": _name_arg(name), "dupid": int_arg("dupid", dupid, minimum=0)}
        if status is not None:
            body["status"] = str(status)
        if fail_mode is not None:
            body["fail_mode"] = str(fail_mode)
        return await self._meta_call("meta.modify_duplication", body, timeout, idempotent=False)

    # -- cluster ---------------------------------------------------------------------------------------

    @returns_deferred
    async def list_nodes(self, *, timeout: float | None = None) -> dict:
        """``{nodes: [NodeInfo]}``."""
        return await self._meta_call("meta.list_nodes", {}, timeout)

    @returns_deferred
    async def cluster_info(self, *, timeout: float | None = None) -> dict:
        return await self._meta_call("meta.cluster_info", {}, timeout)

    @returns_deferred
    async def meta_level(self, level: str | None = None, *, timeout: float | None = None) -> dict:
        """``{level, old_level}``; with ``level`` (steady, lively, freezed), set it."""
        if level is None:
            return await self._meta_call("meta.meta_level", {}, timeout)
        body = {"level": _choice_arg("level", level, META_LEVELS)}
        return await self._meta_call("meta.meta_level", body, timeout, idempotent=False)

    @returns_deferred
    async def events(self, since: int = 0, *, timeout: float | None = None) -> dict:
        """``{events: [...], last_seq}``: configuration and liveness events after sequence number ``since``."""
        return await self._meta_call("meta.events", {"since": since}, timeout)

    # -- one node --------------------------------------------------------------------------------------

    @returns_deferred
    async def replica_status(self, address: str, *, timeout: float | None = None) -> dict:
        """``replica.status`` of the replica server at ``address``."""
        return await self._node_call(address, "replica.status", {}, timeout)

    @returns_deferred
    async def remote_command(
        self, address: str, command: str, args: list[str] | tuple[str, ...] = (), *, timeout: float | None = None
    ) -> dict:
        """``{output}`` of ``node.remote_command`` on any node (meta or replica server)."""
        if not isinstance(command, str) or not command:
            raise InvalidArgumentError("command must be a non-empty str")
        if isinstance(args, str) or not all(isinstance(a, str) for a in args):
            raise InvalidArgumentError("args must be a list of str")
        return await self._node_call(address, "node.remote_command", {"command": command, "args": list(args)}, timeout)

    async def _node_call(self, address: str, method: str, body: dict, timeout: float | None) -> Any:
        address = address_arg(address, "node address")
        return await self._pool.call(address, method, body, timeout_arg(timeout, self._meta.timeout))

    def close(self) -> Deferred:
        """Close the connections, if this admin made its own pool."""
        if self._owns_pool:
            return self._pool.close()
        return succeed(None)
