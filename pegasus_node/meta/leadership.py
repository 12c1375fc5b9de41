"""Which meta server leads: the only one that serves, decides and writes the cluster's state.

With the file state store there is one meta server, and it leads from its start (``SoleLeadership``).

With ZooKeeper, several meta servers contend for a kazoo Lock (an ephemeral sequential znode each; the lowest
leads) under ``{cluster_root}/leader`` (``ZooKeeperLeadership``). The leader stops leading as soon as its
ZooKeeper connection is suspended, before its session can expire and another meta server be elected: kazoo
suspends a connection after two thirds of the session timeout without an answer, and ZooKeeper expires the
session only after the whole timeout. Stopping first matters for leases (DESIGN.md rule 3): a deposed leader
must not acknowledge one more beacon, or a replica server could keep a primary's lease while the new leader,
after its grace period, appoints another primary. The new leader gives every replica server a full grace period
from its election before it declares any dead (meta/server.py ``_load``).

A leader that stopped leading contends again once its connection is back (it releases its old znode first, so
another meta server may win meanwhile).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kazoo.protocol.states import KazooState
from twisted.logger import Logger

from pegasus_node.errors import ErrorCode, PegasusError

log = Logger(namespace="pegasus.meta.leadership")

RETRY_SECONDS = 1.0
STOP_WAIT_SECONDS = 2.0


class SoleLeadership:
    """One meta server, leading from its start."""

    def __init__(self) -> None:
        self._leading = False

    def start(self, on_elected: Callable[[], None], on_deposed: Callable[[str], None]) -> None:
        self._leading = True
        on_elected()

    def is_leading(self) -> bool:
        return self._leading

    def describe(self) -> str:
        return "the only meta server"

    def resign(self, why: str) -> None:
        """Leading failed (the state cannot be loaded): with nobody to hand over to, the process cannot start."""
        self._leading = False
        raise PegasusError(ErrorCode.ERR_INVALID_STATE, why)

    def stop(self) -> None:
        self._leading = False


class ZooKeeperLeadership:
    def __init__(self, client: Any, cluster_root: str, address: str, reactor: Any, *,
                 fence: Callable[[str | None], None]) -> None:
        self.client = client
        self.path = "/" + cluster_root.strip("/") + "/leader"
        self.address = address
        self.reactor = reactor
        self._fence = fence  # the state store's fence_with: our election znode while we lead
        self._on_elected: Callable[[], None] = lambda: None
        self._on_deposed: Callable[[str], None] = lambda why: None
        self._leading = False
        self._lock: Any = None  # the kazoo Lock of the current attempt
        self._attempt = 0  # bumped by every new attempt, so a late win of an abandoned one is ignored
        self._connection_lost = False
        self._stopping = False

    def start(self, on_elected: Callable[[], None], on_deposed: Callable[[str], None]) -> None:
        self._on_elected, self._on_deposed = on_elected, on_deposed
        self.client.add_listener(self._on_connection_state)
        self._contend()

    def is_leading(self) -> bool:
        # The connection state is read at once, not only when the listener's news reaches the reactor.
        return self._leading and self._connected()

    def describe(self) -> str:
        return f"elected through ZooKeeper ({self.path})"

    # ----- contending -----

    def _contend(self, pause: float = 0.0) -> None:
        self._attempt += 1
        old, self._lock = self._lock, self.client.Lock(self.path, identifier=self.address)
        threading.Thread(target=self._acquire, args=(self._attempt, old, self._lock, pause), daemon=True,
                         name="pegasus-meta-election").start()

    def resign(self, why: str) -> None:
        """Leading failed (the state cannot be loaded): let another meta server try, and try again later."""
        log.error("this meta server resigns: {why}", why=why)
        self._leading = False
        self._contend(pause=RETRY_SECONDS)

    def _acquire(self, attempt: int, old: Any, lock: Any, pause: float) -> None:
        """On its own thread: kazoo's Lock.acquire blocks until we lead."""
        if old is not None:
            _quietly(old.cancel)
            _quietly(old.release)  # our old znode would stand before our new one for as long as we live
        time.sleep(pause)  # after a resignation, the others' turn first
        while not self._stopping and attempt == self._attempt:
            try:
                if lock.acquire():
                    self.reactor.callFromThread(self._won, attempt, lock)
                    return
            except Exception as exc:  # connection loss, session expiry: try again once reconnected
                log.warn("meta election attempt failed: {err}; retrying", err=exc)
            time.sleep(RETRY_SECONDS)

    def _won(self, attempt: int, lock: Any) -> None:
        if attempt != self._attempt or self._stopping:
            bounded(lock.release, 0)  # an abandoned attempt's znode: no need to wait for it to go
            return
        if not self._connected():
            self._connection_lost = True  # contend again on reconnection
            return
        self._fence(f"{self.path}/{lock.node}")
        self._leading = True
        log.info("this meta server ({address}) leads now", address=self.address)
        self._on_elected()

    def _connected(self) -> bool:
        return self.client.state == KazooState.CONNECTED

    # ----- the ZooKeeper connection -----

    def _on_connection_state(self, state: Any) -> None:
        """kazoo's listener, on its own thread: must not block."""
        self.reactor.callFromThread(self._connection_changed, state)

    def _connection_changed(self, state: Any) -> None:
        if self._stopping:
            return
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            self._connection_lost = True
            if self._leading:
                self._leading = False
                why = ("its ZooKeeper session expired" if state == KazooState.LOST
                       else "its ZooKeeper connection was suspended")
                log.warn("this meta server stops leading: {why}", why=why)
                self._on_deposed(why)
        elif state == KazooState.CONNECTED and self._connection_lost:
            self._connection_lost = False
            self._contend()

    def stop(self) -> None:
        """Step down at once, so that another meta server can lead without waiting for our session to expire.
        At most ``STOP_WAIT_SECONDS``: with ZooKeeper gone, the release would retry for ever and the process
        would never exit; the session then expires on its own."""
        self._stopping = True
        was_leading, self._leading = self._leading, False
        if self._lock is not None:
            _quietly(self._lock.cancel)
            if was_leading and self._connected():
                bounded(self._lock.release, STOP_WAIT_SECONDS)


def bounded(call: Callable[[], Any], seconds: float) -> None:
    """Run a blocking ZooKeeper call on a daemon thread, and wait for it ``seconds`` at most."""
    worker = threading.Thread(target=_quietly, args=(call,), daemon=True, name="pegasus-zookeeper-call")
    worker.start()
    worker.join(seconds)


def _quietly(call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception:  # a znode already gone with its session: nothing left to undo
        pass
