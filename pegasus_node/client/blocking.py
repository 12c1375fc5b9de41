"""A blocking facade over :class:`Client`, for scripts.

The Twisted reactor (the asyncio one, see ``pegasus_node.base.reactor``) runs in a daemon background thread
started by the first ``BlockingClient``; calls are handed to it with ``blockingCallFromThread`` and wait
for the result. If the reactor is already running in another thread, that one is used. A Twisted reactor
cannot be restarted, so closing a client leaves the thread running for the next one; it ends with the
process. Calling a blocking method from the reactor thread itself would wait forever, so it is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.threads import blockingCallFromThread
from twisted.python import threadable

from pegasus_node.base.reactor import install_reactor
from pegasus_node.client.admin import MetaAdmin
from pegasus_node.client.client import Client
from pegasus_node.client.errors import ReactorThreadError
from pegasus_node.client.scanner import Record, Scanner
from pegasus_node.client.table import Table

_REACTOR_START_TIMEOUT_SECONDS = 30.0
_reactor_lock = threading.Lock()
_reactor_thread: threading.Thread | None = None


def _refuse_in_reactor_thread() -> None:
    if threadable.isInIOThread():
        raise ReactorThreadError(
            "blocking client calls cannot be made from the Twisted reactor thread; use pegasus_node.client.Client"
        )


def running_reactor() -> Any:
    """The reactor, running: started in a daemon thread unless it already runs somewhere."""
    global _reactor_thread
    _refuse_in_reactor_thread()
    install_reactor()
    from twisted.internet import reactor

    with _reactor_lock:
        if reactor.running:
            return reactor
        if getattr(reactor, "_startedBefore", False):
            raise RuntimeError("the Twisted reactor of this process has been stopped and cannot be restarted")
        if _reactor_thread is None:
            started = threading.Event()
            reactor.callWhenRunning(started.set)
            _reactor_thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False}, name="pegasus-reactor", daemon=True
            )
            _reactor_thread.start()
            if not started.wait(_REACTOR_START_TIMEOUT_SECONDS):
                raise RuntimeError("the Twisted reactor thread did not start")
    return reactor


class _BlockingProxy:
    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        _refuse_in_reactor_thread()
        return blockingCallFromThread(self._reactor, fn, *args, **kwargs)


def _blocking(method: Callable[..., Any]) -> Callable[..., Any]:
    """A blocking twin of an async object's method, with its name and docstring."""
    name = method.__name__

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._call(getattr(self._target, name), *args, **kwargs)

    call.__name__ = name
    call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


class BlockingScanner(_BlockingProxy):
    """Iterate to get ``(hash_key, sort_key, value)`` records; or call ``next_batch()``."""

    def __init__(self, reactor: Any, scanner: Scanner) -> None:
        super().__init__(reactor)
        self._target = scanner

    next_batch = _blocking(Scanner.next_batch)

    @property
    def exhausted(self) -> bool:
        return self._target.exhausted

    def __iter__(self) -> Iterator[Record]:
        while True:
            batch = self.next_batch()
            if not batch:
                return
            yield from batch


class BlockingTable(_BlockingProxy):
    """The methods of :class:`Table`, returning plain values instead of Deferreds."""

    def __init__(self, reactor: Any, table: Table) -> None:
        super().__init__(reactor)
        self._target = table

    @property
    def name(self) -> str:
        return self._target.name

    @property
    def partition_count(self) -> int:
        return self._target.partition_count

    @property
    def table(self) -> Table:
        """The asynchronous table underneath (use it only on the reactor thread)."""
        return self._target

    set = _blocking(Table.set)
    get = _blocking(Table.get)
    delete = _blocking(Table.delete)
    remove = delete
    exist = _blocking(Table.exist)
    ttl = _blocking(Table.ttl)
    incr = _blocking(Table.incr)
    check_and_set = _blocking(Table.check_and_set)
    multi_set = _blocking(Table.multi_set)
    multi_get = _blocking(Table.multi_get)
    multi_delete = _blocking(Table.multi_delete)
    multi_del = multi_delete
    sortkey_count = _blocking(Table.sortkey_count)
    hash_scan = _blocking(Table.hash_scan)
    full_scan = _blocking(Table.full_scan)

    def get_scanner(self, *args: Any, **kwargs: Any) -> BlockingScanner:
        return BlockingScanner(self._reactor, self._call(self._target.get_scanner, *args, **kwargs))

    def get_unordered_scanners(self, *args: Any, **kwargs: Any) -> list[BlockingScanner]:
        scanners = self._call(self._target.get_unordered_scanners, *args, **kwargs)
        return [BlockingScanner(self._reactor, s) for s in scanners]


class BlockingAdmin(_BlockingProxy):
    """The methods of :class:`MetaAdmin`, returning the reply dicts."""

    def __init__(self, reactor: Any, admin: MetaAdmin) -> None:
        super().__init__(reactor)
        self._target = admin

    list_apps = _blocking(MetaAdmin.list_apps)
    create_app = _blocking(MetaAdmin.create_app)
    drop_app = _blocking(MetaAdmin.drop_app)
    recall_app = _blocking(MetaAdmin.recall_app)
    query_config = _blocking(MetaAdmin.query_config)
    list_nodes = _blocking(MetaAdmin.list_nodes)
    cluster_info = _blocking(MetaAdmin.cluster_info)
    meta_level = _blocking(MetaAdmin.meta_level)
    add_duplication = _blocking(MetaAdmin.add_duplication)
    query_duplication = _blocking(MetaAdmin.query_duplication)
    modify_duplication = _blocking(MetaAdmin.modify_duplication)
    replica_status = _blocking(MetaAdmin.replica_status)
    remote_command = _blocking(MetaAdmin.remote_command)


class BlockingClient(_BlockingProxy):
    """``BlockingClient(meta_list, timeout=5.0, max_value_bytes=...)``: options as :class:`Client`.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, meta_list: str | list[str], **opts: Any) -> None:
        reactor = running_reactor()
        super().__init__(reactor)
        self._target: Client = self._call(lambda: Client(meta_list, reactor=reactor, **opts))

    @property
    def client(self) -> Client:
        """The asynchronous client underneath (use it only on the reactor thread)."""
        return self._target

    def open_table(self, name: str, **opts: Any) -> BlockingTable:
        """As :meth:`Client.open_table` (``timeout``, ``backup_request_delay_ms``), returning a blocking table."""
        return BlockingTable(self._reactor, self._call(self._target.open_table, name, **opts))

    @property
    def admin(self) -> BlockingAdmin:
        return BlockingAdmin(self._reactor, self._target.admin)

    def close(self) -> None:
        self._call(self._target.close)

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
