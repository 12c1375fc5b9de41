"""A table's partition configurations, cached from ``meta.query_config`` and refreshed on demand.

Refreshes are coalesced: while one query is in flight for a table, every other caller waits for that same
answer instead of sending its own, so a failover that fails a thousand requests at once costs the meta
server one query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.python.failure import Failure

from pegasus_node.base.keys import partition_index
from pegasus_node.client.errors import TableNotFoundError
from pegasus_node.client.meta_session import MetaSession
from pegasus_node.errors import ErrorCode, PegasusError

_TABLE_MISSING = frozenset({ErrorCode.ERR_APP_NOT_EXIST, ErrorCode.ERR_OBJECT_NOT_FOUND})


@dataclass(frozen=True)
class PartitionInfo:
    index: int
    ballot: int
    primary: str  # "" while the partition has no primary
    secondaries: tuple[str, ...]


# The routing cache of a TableConfig: applications reuse hash keys heavily, and the CRC-64 in pure Python
# (about 1 us for a 14-byte key) costs more than all the rest of the routing. Bounded in entries and in key
# length, so it holds under 9 MiB (65536 keys of 64 bytes); when full it is simply emptied (refilling is
# cheap, and frequent keys come back first).
ROUTE_CACHE_MAX_ENTRIES = 1 << 16
ROUTE_CACHE_MAX_KEY_BYTES = 64


@dataclass(frozen=True)
class TableConfig:
    app_id: int
    name: str
    partition_count: int
    partitions: tuple[PartitionInfo, ...]
    version: int  # increases with every refresh, so a caller can tell whether it saw an older one
    # hash key -> its partition under this configuration; a refresh makes a new TableConfig, so a new cache.
    _routes: dict[bytes, PartitionInfo] = field(default_factory=dict, init=False, repr=False, compare=False)

    def partition_of(self, hash_key: bytes) -> PartitionInfo:
        """Pegasus's routing: the CRC-64 of rDSN (``dsn::utils::crc64_calc``) of the hash key, read as an
        unsigned 64-bit number, modulo the partition count, so pegasus-py and Pegasus clients agree."""
        routes = self._routes
        try:
            part = routes.get(hash_key)
        except TypeError:  # unhashable (a bytearray): not cached
            return self.partitions[partition_index(hash_key, self.partition_count)]
        if part is not None:
            return part
        part = self.partitions[partition_index(hash_key, self.partition_count)]
        if len(hash_key) <= ROUTE_CACHE_MAX_KEY_BYTES:
            if len(routes) >= ROUTE_CACHE_MAX_ENTRIES:
                routes.clear()
            routes[hash_key] = part
        return part


def parse_query_config(table_name: str, reply: Any, version: int) -> TableConfig:
    """Turn a ``meta.query_config`` reply into a :class:`TableConfig`; a malformed reply is ERR_INVALID_DATA."""
    try:
        app = reply["app"]
        app_id = int(app["app_id"])
        count = int(app["partition_count"])
        by_index: dict[int, PartitionInfo] = {}
        for pc in reply["partitions"]:
            gpid = pc["gpid"]
            index = int(gpid[1])
            by_index[index] = PartitionInfo(
                index=index,
                ballot=int(pc.get("ballot", 0)),
                primary=pc.get("primary") or "",
                secondaries=tuple(pc.get("secondaries") or ()),
            )
        partitions = tuple(by_index[i] for i in range(count))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise PegasusError(
            ErrorCode.ERR_INVALID_DATA, f"meta.query_config for {table_name!r}: malformed reply ({e!r})"
        ) from None
    if count <= 0:
        raise PegasusError(ErrorCode.ERR_INVALID_DATA, f"table {table_name!r} has {count} partitions")
    return TableConfig(app_id, table_name, count, partitions, version)


class PartitionConfigCache:
    def __init__(self, meta: MetaSession, table_name: str) -> None:
        self._meta = meta
        self.table_name = table_name
        self.config: TableConfig | None = None
        self._version = 0
        self._waiters: list[Deferred] | None = None  # not None while a query is in flight
        self.queries = 0  # how many meta.query_config this cache sent (observability)

    def get(self) -> Deferred:
        """The cached configuration, fetching it the first time."""
        if self.config is not None:
            return succeed(self.config)
        return self.refresh()

    def refresh(self, stale_version: int | None = None, *, timeout: float | None = None) -> Deferred:
        """Ask the meta server again and fire with the new :class:`TableConfig`.

        With ``stale_version``, a configuration newer than that one is already good enough, so no query
        is sent. ``timeout`` bounds a query this call starts (default: the meta session's). Cancelling the
        returned Deferred only stops this caller's wait.
        """
        if stale_version is not None and self.config is not None and self.config.version > stale_version:
            return succeed(self.config)
        waiter = Deferred()
        if self._waiters is not None:
            self._waiters.append(waiter)
            return waiter
        self._waiters = [waiter]
        self.queries += 1
        ensureDeferred(self._query(timeout)).addBoth(self._finish)
        return waiter

    async def _query(self, timeout: float | None) -> TableConfig:
        try:
            reply = await self._meta.call("meta.query_config", {"app_name": self.table_name}, timeout=timeout)
        except PegasusError as e:
            if e.code in _TABLE_MISSING:
                raise TableNotFoundError(self.table_name, e.message) from None
            raise
        self._version += 1
        config = parse_query_config(self.table_name, reply, self._version)
        self.config = config
        return config

    def _finish(self, result: TableConfig | Failure) -> None:
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            if waiter.called:  # cancelled by its caller
                continue
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
