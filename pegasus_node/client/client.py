"""The asynchronous client: open tables, run operations, all as Deferreds on the Twisted reactor."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed

from pegasus_node.client.admin import MetaAdmin
from pegasus_node.client.errors import ClientClosedError, InvalidArgumentError
from pegasus_node.client.invoker import PartitionInvoker
from pegasus_node.client.meta_session import MetaSession
from pegasus_node.client.partition_cache import PartitionConfigCache
from pegasus_node.client.table import Table
from pegasus_node.client.validation import DEFAULT_MAX_VALUE_BYTES, bool_arg, int_arg, timeout_arg

DEFAULT_TIMEOUT_SECONDS = 5.0


class Client:
    """A connection to one cluster, named by its meta servers.

    ``meta_list``: ``"127.0.0.1:34601,127.0.0.1:34602"`` or a list of ``"host:port"``. ``timeout``: the
    default deadline of each operation, in seconds, retries included. ``pool``: an
    ``RpcClientPool`` to share (the client then does not close it); by default the client makes its own.
    ``max_value_bytes``: larger values are refused before sending (default 1 MiB).
    """

    def __init__(
        self,
        meta_list: str | list[str],
        *,
        reactor: Any = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        pool: Any = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._closed = False
        self.timeout = timeout_arg(timeout, DEFAULT_TIMEOUT_SECONDS)
        self.max_value_bytes = int_arg("max_value_bytes", max_value_bytes, minimum=0)
        self._owns_pool = pool is None
        if pool is None:
            from pegasus_node.twisted_rpc import RpcClientPool

            pool = RpcClientPool(reactor)
        self._pool = pool
        self.meta = MetaSession(
            meta_list, pool=pool, clock=reactor, timeout=self.timeout, check_open=self._check_open
        )
        self._caches: dict[str, PartitionConfigCache] = {}
        self._invokers: dict[tuple[str, float, bool], PartitionInvoker] = {}

    @property
    def meta_servers(self) -> list[str]:
        return list(self.meta.addresses)

    @property
    def pool(self) -> Any:
        return self._pool

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def admin(self) -> MetaAdmin:
        """Cluster administration over this client's connections and meta server list."""
        return MetaAdmin.over(self.meta, self._pool)

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError()

    def open_table(
        self, name: str, *, timeout: float | None = None, backup_request_delay_ms: int = 0, follower_read: bool = False
    ) -> Deferred:
        """Fire with a :class:`Table` once its partition configuration is known.

        ``timeout``: the table's default operation deadline (and this call's), seconds; None: the client's.
        ``backup_request_delay_ms`` > 0 enables backup requests for reads: a read the primary has not
        answered after that many ms is also sent to one random secondary, and the first reply wins
        (the secondary's may be slightly stale). <= 0 disables them.
        ``follower_read``: reads go to a random secondary, which answers once it has applied its primary's
        commit point (as fresh as a read from the primary: linearizable, one round trip between the replica
        servers more); a read it cannot serve is retried at the primary. It takes reads off the primary;
        it takes precedence over backup requests.
        Fails with :class:`TableNotFoundError` for an unknown table.
        """
        return ensureDeferred(self._open_table(name, timeout, backup_request_delay_ms, follower_read))

    async def _open_table(self, name: str, timeout: float | None, backup_request_delay_ms: int,
                          follower_read: bool) -> Table:
        self._check_open()
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("table name must be a non-empty str")
        table_timeout = timeout_arg(timeout, self.timeout)
        delay_ms = int_arg("backup_request_delay_ms", backup_request_delay_ms)
        follower_read = bool_arg("follower_read", follower_read)
        cache = self._caches.get(name)
        if cache is None:
            cache = self._caches[name] = PartitionConfigCache(self.meta, name)
        # The meta session's own deadline error names the last failure (say, connection refused).
        await cache.refresh(timeout=table_timeout)
        delay_seconds = max(delay_ms, 0) / 1000.0
        key = (name, delay_seconds, follower_read)
        invoker = self._invokers.get(key)
        if invoker is None:
            invoker = PartitionInvoker(
                pool=self._pool,
                clock=self._reactor,
                cache=cache,
                backup_delay_seconds=delay_seconds,
                follower_read=follower_read,
                check_open=self._check_open,
            )
            self._invokers[key] = invoker
        return Table(
            name=name,
            invoker=invoker,
            clock=self._reactor,
            timeout=table_timeout,
            max_value_bytes=self.max_value_bytes,
        )

    def close(self) -> Deferred:
        """Refuse further operations and close the connections (if the pool is the client's own)."""
        if self._closed:
            return succeed(None)
        self._closed = True
        if self._owns_pool:
            return self._pool.close()
        return succeed(None)
