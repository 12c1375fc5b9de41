"""The shell's connection to a cluster: the real client (``pegasus_node.client``) and its admin calls.

Everything the commands need from a cluster goes through :class:`ClusterConnection`, as coroutines that run
on the asyncio loop Twisted also runs on. :func:`wait` bridges a Deferred (or a Twisted-style coroutine)
into that loop.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from typing import TYPE_CHECKING, Any, AsyncIterator

from twisted.internet.defer import Deferred

from pegasus_node.client.client import Client
from pegasus_node.client.table import Table
from pegasus_node.errors import PegasusError
from pegasus_shell.errors import UnreachableError

if TYPE_CHECKING:
    from pegasus_shell.context import ShellContext

PROBE_TIMEOUT_SECONDS = 3.0
TCP_CHECK_SECONDS = 0.5
SCAN_BATCH_SIZE = 500


async def wait(value: Any) -> Any:
    """The result of a Deferred or a Twisted-style coroutine, awaited from an asyncio task."""
    if inspect.iscoroutine(value):
        value = Deferred.fromCoroutine(value)
    if isinstance(value, Deferred):
        return await value.asFuture(asyncio.get_running_loop())
    return value


def any_meta_accepts(meta_list: list[str], timeout: float = TCP_CHECK_SECONDS) -> bool:
    """Does any meta server accept a TCP connection? A quick check before waiting on RPC deadlines."""
    for address in meta_list:
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


class ClusterConnection:
    def __init__(self, name: str, meta_list: list[str]) -> None:
        self.name = name
        self.client = Client(list(meta_list))
        self.admin = self.client.admin
        self._tables: dict[tuple[str, bool], Table] = {}  # (name, follower_read) -> handle

    @property
    def meta_servers(self) -> list[str]:
        return self.client.meta_servers

    async def probe(self) -> dict:
        """cluster_info, or :class:`UnreachableError` saying which cluster could not be reached and why."""
        where = f"cluster {self.name} (meta servers {','.join(self.meta_servers)})"
        if not await asyncio.to_thread(any_meta_accepts, self.meta_servers):
            raise UnreachableError(f"cannot reach {where}: connection refused or timed out")
        try:
            return await wait(self.admin.cluster_info(timeout=PROBE_TIMEOUT_SECONDS))
        except PegasusError as exc:
            raise UnreachableError(f"cannot reach {where}: {exc.message}") from None

    async def close(self) -> None:
        await wait(self.client.close())

    # -- tables and nodes (reply bodies as in docs/rpc.md) -------------------------------------------------

    async def list_apps(self, status: str) -> list[dict]:
        return (await wait(self.admin.list_apps(status)))["apps"]

    async def create_app(self, name: str, partition_count: int, replica_count: int) -> dict:
        return (await wait(self.admin.create_app(name, partition_count, replica_count)))["app"]

    async def drop_app(self, name: str, reserve_seconds: int | None) -> dict:
        self.forget_table(name)
        return (await wait(self.admin.drop_app(name, reserve_seconds)))["app"]

    async def recall_app(self, app_id: int, new_name: str | None) -> dict:
        return (await wait(self.admin.recall_app(app_id, new_name)))["app"]

    async def query_config(self, name: str) -> tuple[dict, list[dict]]:
        reply = await wait(self.admin.query_config(name))
        return reply["app"], reply["partitions"]

    async def list_nodes(self) -> list[dict]:
        return (await wait(self.admin.list_nodes()))["nodes"]

    async def cluster_info(self) -> dict:
        return await wait(self.admin.cluster_info())

    async def meta_level(self, level: str | None) -> dict:
        return await wait(self.admin.meta_level(level))

    async def add_duplication(self, name: str, remote: str, fail_mode: str, full: bool) -> dict:
        return (await wait(self.admin.add_duplication(name, remote, fail_mode=fail_mode, full=full)))["duplication"]

    async def query_duplication(self, name: str) -> dict:
        return await wait(self.admin.query_duplication(name))

    async def modify_duplication(self, name: str, dupid: int, *, status: str | None = None,
                                 fail_mode: str | None = None) -> dict:
        reply = await wait(self.admin.modify_duplication(name, dupid, status=status, fail_mode=fail_mode))
        return reply["duplication"]

    async def remote_command(self, address: str, command: str, args: list[str]) -> Any:
        return (await wait(self.admin.remote_command(address, command, args)))["output"]

    # -- data --------------------------------------------------------------------------------------------

    async def table(self, name: str, follower_read: bool = False) -> Table:
        table = self._tables.get((name, follower_read))
        if table is None:
            opened = await wait(self.client.open_table(name, follower_read=follower_read))
            table = self._tables[name, follower_read] = opened
        return table

    def forget_table(self, name: str) -> None:
        for follower_read in (False, True):
            self._tables.pop((name, follower_read), None)

    async def multi_get(self, table: Table, hash_key: bytes, sort_keys: list[bytes] | None,
                        max_count: int | None) -> tuple[list[tuple[bytes, bytes]], bool]:
        values, complete = await wait(table.multi_get(hash_key, sort_keys, max_kv_count=max_count))
        return list(values.items()), complete

    async def hash_scan(self, table: Table, hash_key: bytes, start: bytes, stop: bytes,
                        with_values: bool) -> AsyncIterator[tuple[bytes, bytes, bytes | None]]:
        scanner = table.get_scanner(hash_key, start, stop, batch_size=SCAN_BATCH_SIZE, no_value=not with_values)
        async for record in _records([scanner], with_values):
            yield record

    async def full_scan(self, table: Table, with_values: bool) -> AsyncIterator[tuple[bytes, bytes, bytes | None]]:
        scanners = table.get_unordered_scanners(1, batch_size=SCAN_BATCH_SIZE, no_value=not with_values)
        async for record in _records(scanners, with_values):
            yield record

    def partition_scanners(self, table: Table) -> list[Any]:
        """One key-only scanner per partition (``scanner.partitions`` names it)."""
        return table.get_unordered_scanners(table.partition_count, batch_size=SCAN_BATCH_SIZE, no_value=True)


async def _records(scanners: list[Any], with_values: bool) -> AsyncIterator[tuple[bytes, bytes, bytes | None]]:
    for scanner in scanners:
        while True:
            batch = await wait(scanner.next_batch())
            if not batch:
                break
            for hk, sk, value in batch:
                yield hk, sk, (value if with_values else None)


def _name_for(ctx: "ShellContext", meta_list: list[str]) -> str:
    for name, metas in ctx.clusters.clusters.items():
        if sorted(metas) == sorted(meta_list):
            return name
    return ",".join(meta_list)


async def connect_target(ctx: "ShellContext") -> tuple[ClusterConnection, str, Any]:
    """Connect to the context's target: (connection, cluster name, embedded onebox we started or None)."""
    target = ctx.target
    if target.name is not None:
        name, meta_list = target.name, ctx.clusters.meta_list(target.name)
    elif target.meta_list:
        meta_list = list(target.meta_list)
        name = _name_for(ctx, meta_list)
    else:
        return await _connect_auto(ctx)
    conn = ClusterConnection(name, meta_list)
    try:
        await conn.probe()
    except BaseException:
        await conn.close()
        raise
    return conn, name, None


async def _connect_auto(ctx: "ShellContext") -> tuple[ClusterConnection, str, Any]:
    """The default cluster if it answers, else an embedded onebox (already running, or started now)."""
    from pegasus_shell.embedded import EmbeddedOnebox

    default = ctx.clusters.default_cluster
    if default is not None:
        conn = ClusterConnection(default, ctx.clusters.meta_list(default))
        try:
            await conn.probe()
            return conn, default, None
        except UnreachableError:
            await conn.close()
            ctx.notice(f"the default cluster {default} does not answer; using an embedded onebox")
    box = EmbeddedOnebox.default()
    meta = await box.attach_or_start(ctx.notice)
    conn = ClusterConnection(EmbeddedOnebox.CLUSTER_NAME, [meta])
    try:
        await conn.probe()
    except BaseException:
        await conn.close()
        if box.started_here:
            await box.stop()
        raise
    return conn, EmbeddedOnebox.CLUSTER_NAME, box if box.started_here else None
