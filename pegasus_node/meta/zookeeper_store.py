"""The meta server's state in ZooKeeper (through kazoo), for several meta servers sharing one state.

The tree of the StateStore interface maps onto znodes under ``{cluster_root}/state``: ``/apps/1`` is the znode
``{cluster_root}/state/apps/1``. ZooKeeper makes every write durable on a quorum before it answers, and a
multi-operation transaction makes ``apply`` atomic.

Only the leading meta server writes (leadership.py). Its writes are fenced: each transaction first checks that
the leader's own election znode still exists. That znode is ephemeral, so once the leader's ZooKeeper session
has expired (and another meta server may have been elected) every write it still tries fails, instead of
overwriting the new leader's state.

The calls are synchronous, as the file store's are: a change is persisted before the meta server announces
it. Each waits at most ``operation_timeout`` seconds.
"""

from __future__ import annotations

import logging
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry
from twisted.logger import Logger, LogLevel

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.meta.state_store import StateStore, StateStoreError


_log = Logger(namespace="pegasus.meta.zookeeper")


class NotLeaderError(PegasusError):
    """A write of a meta server whose leadership has ended (its fence failed)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ERR_INVALID_STATE, message)


class _ToTwistedLog(logging.Handler):
    """kazoo logs through the standard library; its lines go to the node's log with everything else."""

    def emit(self, record: logging.LogRecord) -> None:
        level = LogLevel.warn if record.levelno >= logging.WARNING else LogLevel.info
        _log.emit(level, "kazoo: {message}", message=record.getMessage())


def connect(hosts: str, session_timeout: float, connect_timeout: float = 15.0) -> Any:
    """A started KazooClient, or StateStoreError saying what to check."""
    # Reconnect for ever (a ZooKeeper restart must not end the meta server); the session decides leadership.
    kazoo_log = logging.getLogger("kazoo")
    if not any(isinstance(h, _ToTwistedLog) for h in kazoo_log.handlers):
        kazoo_log.addHandler(_ToTwistedLog(logging.INFO))
        kazoo_log.setLevel(logging.INFO)
        kazoo_log.propagate = False
    client = KazooClient(hosts=hosts, timeout=session_timeout,
                         connection_retry=KazooRetry(max_tries=-1, delay=0.2, max_delay=2.0))
    try:
        client.start(timeout=connect_timeout)
    except KazooTimeoutError:
        client.stop()
        client.close()
        raise StateStoreError(f"cannot reach ZooKeeper at {hosts} within {connect_timeout:g} s; check that it "
                              "runs and that [zookeeper] hosts_list names it") from None
    return client


class ZooKeeperStateStore(StateStore):
    def __init__(self, client: Any, hosts: str, cluster_root: str, *, operation_timeout: float = 10.0) -> None:
        self.client = client
        self.hosts = hosts
        self.cluster_root = "/" + cluster_root.strip("/")
        self.base = f"{self.cluster_root}/state"
        self.operation_timeout = operation_timeout
        self._fence: str | None = None  # the leader's election znode, checked by every write
        self._call(self.client.ensure_path_async, self.base)

    def describe(self) -> str:
        return f"ZooKeeper {self.hosts} {self.base}"

    def fence_with(self, znode: str | None) -> None:
        """Every later write checks that ``znode`` (this meta server's election znode) still exists."""
        self._fence = znode

    def _znode(self, path: str) -> str:
        return self.base + path if path != "/" else self.base

    def _call(self, method, *args) -> Any:
        try:
            return method(*args).get(timeout=self.operation_timeout)
        except NoNodeError:
            raise
        except KazooTimeoutError:
            raise StateStoreError(f"ZooKeeper did not answer within {self.operation_timeout:g} s; the change was "
                                  "not made (check ZooKeeper, then retry)") from None
        except KazooException as exc:
            raise StateStoreError(f"ZooKeeper failed: {type(exc).__name__} {exc}; the change was not made "
                                  "(check ZooKeeper, then retry)") from None

    def get(self, path: str) -> bytes | None:
        try:
            data, _ = self._call(self.client.get_async, self._znode(path))
        except NoNodeError:
            return None
        return data

    def children(self, path: str) -> list[str]:
        try:
            return sorted(self._call(self.client.get_children_async, self._znode(path)))
        except NoNodeError:
            return []

    def _exists(self, znode: str) -> bool:
        return self._call(self.client.exists_async, znode) is not None

    def _subtree(self, znode: str) -> list[str]:
        """``znode`` and everything under it, deepest first (the order ZooKeeper deletes in)."""
        try:
            names = self._call(self.client.get_children_async, znode)
        except NoNodeError:
            return []
        found = []
        for name in names:
            found += self._subtree(f"{znode}/{name}")
        return found + [znode]

    def apply(self, puts: dict[str, bytes], deletes: list[str] = ()) -> None:
        transaction = self.client.transaction()
        if self._fence is not None:
            transaction.check(self._fence, 0)
        deleted: set[str] = set()
        for path in deletes:
            for znode in self._subtree(self._znode(path)):
                transaction.delete(znode)
                deleted.add(znode)
        created: set[str] = set()
        for path, value in puts.items():
            znode = self._znode(path)
            missing = []
            parent = znode
            while parent != self.base:
                if parent in created or (parent not in deleted and self._exists(parent)):
                    break
                missing.append(parent)
                parent = parent.rsplit("/", 1)[0]
            for absent in reversed(missing):
                transaction.create(absent, value if absent == znode else b"")
                created.add(absent)
            if znode not in created:
                transaction.set_data(znode, value)
        results = self._call(transaction.commit_async)
        failures = [r for r in results if isinstance(r, Exception)]
        if not failures:
            return
        if self._fence is not None and isinstance(results[0], NoNodeError):
            raise NotLeaderError("this meta server is no longer the leader (its ZooKeeper session ended); the "
                                 "change was not made: retry, the client finds the new leader")
        raise StateStoreError(f"ZooKeeper refused the change ({type(failures[0]).__name__}); it was not made "
                              "(another meta server may have written meanwhile: retry)")

    def close(self) -> None:
        pass  # the client belongs to the meta service, which stops it last
