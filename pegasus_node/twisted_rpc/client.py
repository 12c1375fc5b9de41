"""The RPC client: one pipelined connection per server address, shared by every caller.

``RpcClientPool.call`` returns a Deferred that fires with the reply body or fails with PegasusError:
the server's error code, ERR_TIMEOUT when the caller's deadline passes, or ERR_NETWORK_FAILURE when the
connection cannot be made or is lost while the request is in flight. Connections are made on demand; after a
failed connect the address is in backoff (50 ms doubling to 2 s by default), during which calls fail at once
with ERR_NETWORK_FAILURE, so callers retrying within their own deadline are never stuck behind it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc.address import parse_address
from pegasus_node.twisted_rpc.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_BYTES,
    FrameDecoder,
    FrameError,
    code_name,
    encode_request,
    error_message,
    parse_reply,
)
from pegasus_node.twisted_rpc.deadline_wheel import Bucket, DeadlineWheel
from pegasus_node.twisted_rpc.fail_points import FailPoints, delay_seconds
from pegasus_node.twisted_rpc.server import PING_METHOD

_log = Logger(namespace="pegasus.rpc.client")

_ERR_OK = int(ErrorCode.ERR_OK)
_NETWORK_FAILURE = ErrorCode.ERR_NETWORK_FAILURE


class PeerStatus(NamedTuple):
    state: str  # "connected" | "connecting" | "backoff" | "idle"
    in_flight: int  # sent, awaiting a reply
    waiting: int  # queued until the connection is up
    backoff_seconds: float  # left before a new connect may be tried
    backoff_delay: float  # the current backoff step (0 after a successful connect)
    last_error: str


class _Call:
    """One outstanding call. It is in exactly one place: queued (``queue``), or sent (``conn``), or done."""

    __slots__ = (
        "peer", "method", "body", "timeout", "deadline", "deferred", "bucket", "conn", "request_id", "queue", "hold"
    )

    def __init__(self, peer: _Peer, method: str, body: Any) -> None:
        self.peer = peer
        self.method = method
        self.body = body
        self.timeout = 0.0
        self.deadline: float | None = None
        self.deferred: Deferred = Deferred(self._cancelled)
        self.bucket: Bucket | None = None  # the deadline wheel bucket holding this call
        self.conn: _ClientConnection | None = None
        self.request_id = 0
        self.queue: dict[_Call, None] | None = None
        self.hold: IDelayedCall | None = None

    def _detach(self) -> None:
        conn = self.conn
        if conn is not None:
            conn.pending.pop(self.request_id, None)
            self.conn = None
        elif self.queue is not None:
            self.queue.pop(self, None)
            self.queue = None
        if self.hold is not None:
            self.hold.cancel()
            self.hold = None
        self.body = None

    def _cancelled(self, _deferred: Deferred) -> None:
        # The caller cancelled: stop waiting and forget the request id; the Deferred fails with CancelledError.
        if self.bucket is not None:
            self.bucket.pop(self, None)
            self.bucket = None
        self._detach()

    def expire(self) -> None:
        self.bucket = None
        self._detach()
        self.deferred.errback(
            PegasusError(
                ErrorCode.ERR_TIMEOUT, f"{self.method} to {self.peer.address}: no reply within {self.timeout:g}s"
            )
        )

    def fail(self, code: int, message: str) -> None:
        if self.bucket is not None:
            self.bucket.pop(self, None)
            self.bucket = None
        self._detach()
        self.deferred.errback(PegasusError(code, message))

    def complete(self, code: int, body: Any) -> None:
        """The reply arrived; ``conn`` has already forgotten the request id."""
        self.conn = None
        if self.bucket is not None:
            self.bucket.pop(self, None)
            self.bucket = None
        if code == _ERR_OK:
            self.deferred.callback(body)
        else:
            self.deferred.errback(PegasusError(code, error_message(body)))


class _ClientConnection(Protocol):
    def __init__(self, peer: _Peer, max_frame_bytes: int) -> None:
        self.peer = peer
        self.pending: dict[int, _Call] = {}
        self._next_id = 1  # 0 is the id servers use when they cannot tell which request was wrong
        self._decoder = FrameDecoder(max_frame_bytes)
        self._max_frame_bytes = max_frame_bytes
        self._close_reason = ""
        self._lost = False
        self._lost_waiters: list[Deferred] = []

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)

    def send(self, call: _Call) -> None:
        deadline = call.deadline
        if deadline is None:
            timeout_ms = 0
        else:
            timeout_ms = int((deadline - self.peer.pool._reactor.seconds()) * 1000.0) or 1
            if timeout_ms < 0:
                timeout_ms = 1  # the timer has not fired yet; let the server judge
        request_id = self._next_id
        self._next_id = request_id + 1
        try:
            frame = encode_request(request_id, call.method, call.body, timeout_ms)
        except (TypeError, ValueError, OverflowError) as exc:
            call.fail(ErrorCode.ERR_INVALID_PARAMETERS, f"{call.method}: request body cannot be encoded: {exc}")
            return
        if len(frame) - HEADER_BYTES > self._max_frame_bytes:
            call.fail(
                ErrorCode.ERR_VALUE_TOO_LARGE,
                f"{call.method}: request of {len(frame)} bytes exceeds the frame limit of {self._max_frame_bytes}",
            )
            return
        call.body = None
        call.request_id = request_id
        call.conn = self
        self.pending[request_id] = call
        self.transport.write(frame)

    def dataReceived(self, data: bytes) -> None:
        pending = self.pending
        try:
            for obj in self._decoder.feed(data):
                request_id, code, body = parse_reply(obj)
                call = pending.pop(request_id, None)
                if call is not None:
                    call.complete(code, body)
                elif request_id == 0 and code != _ERR_OK:
                    # The server rejected something it could not attribute, and is about to close.
                    self._close_reason = f"{code_name(code)}: {error_message(body)}"
        except FrameError as exc:
            self._close_reason = f"bad reply from server: {exc.message}"
            _log.warn("closing connection to {address}: {reason}", address=self.peer.address, reason=self._close_reason)
            self.transport.abortConnection()

    def fail_pending(self, message: str) -> None:
        # Empty the dict in place: a dataReceived loop further up the stack may still hold it.
        calls = list(self.pending.values())
        self.pending.clear()
        for call in calls:
            call.conn = None
            call.fail(_NETWORK_FAILURE, message)

    def close(self) -> Deferred:
        d: Deferred = Deferred()
        if self._lost:
            d.callback(None)
        else:
            self._lost_waiters.append(d)
            self.transport.loseConnection()
        return d

    def connectionLost(self, reason: Failure = None) -> None:
        self._lost = True
        self.peer.connection_lost(self)
        why = self._close_reason or (reason.getErrorMessage() if reason is not None else "closed")
        self.fail_pending(f"connection to {self.peer.address} lost: {why}")
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)


class _Peer:
    """Connection state for one address: idle, connecting, connected, or in backoff after a failed connect."""

    def __init__(self, pool: RpcClientPool, address: str, host: str, port: int) -> None:
        self.pool = pool
        self.address = address
        self.host = host
        self.port = port
        self.connection: _ClientConnection | None = None
        self.connecting: Deferred | None = None
        self.waiting: dict[_Call, None] = {}
        self.backoff = 0.0
        self.retry_at = 0.0
        self.last_error = ""

    def submit(self, call: _Call) -> None:
        if self.connection is not None:
            self.connection.send(call)
            return
        if self.connecting is None:
            now = self.pool._reactor.seconds()
            if now < self.retry_at:
                call.fail(
                    _NETWORK_FAILURE,
                    f"{self.address} is unreachable ({self.last_error}); next connect in {self.retry_at - now:.3f}s",
                )
                return
        call.queue = self.waiting
        self.waiting[call] = None
        if self.connecting is None:
            self._connect()

    def _connect(self) -> None:
        pool = self.pool
        endpoint_type = TCP6ClientEndpoint if ":" in self.host else TCP4ClientEndpoint
        endpoint = endpoint_type(pool._reactor, self.host, self.port, timeout=pool.connect_timeout)
        d = connectProtocol(endpoint, _ClientConnection(self, pool.max_frame_bytes))
        self.connecting = d
        d.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, connection: _ClientConnection) -> None:
        self.connecting = None
        self.connection = connection
        self.backoff = 0.0
        self.retry_at = 0.0
        self.last_error = ""
        waiting, self.waiting = self.waiting, {}
        for call in waiting:
            call.queue = None
            connection.send(call)

    def _connect_failed(self, failure: Failure) -> None:
        self.connecting = None
        pool = self.pool
        self.backoff = pool.backoff_initial if self.backoff == 0 else min(self.backoff * 2, pool.backoff_max)
        self.retry_at = pool._reactor.seconds() + self.backoff
        self.last_error = failure.getErrorMessage() or failure.type.__name__
        self.fail_waiting(f"cannot connect to {self.address}: {self.last_error}")

    def fail_waiting(self, message: str) -> None:
        waiting, self.waiting = self.waiting, {}
        for call in waiting:
            call.queue = None
            call.fail(_NETWORK_FAILURE, message)

    def connection_lost(self, connection: _ClientConnection) -> None:
        # A lost connection starts no backoff: the next call reconnects, and only a failed connect backs off.
        if self.connection is connection:
            self.connection = None

    def status(self) -> PeerStatus:
        now = self.pool._reactor.seconds()
        if self.connection is not None:
            state = "connected"
        elif self.connecting is not None:
            state = "connecting"
        elif now < self.retry_at:
            state = "backoff"
        else:
            state = "idle"
        in_flight = len(self.connection.pending) if self.connection is not None else 0
        return PeerStatus(
            state, in_flight, len(self.waiting), max(0.0, self.retry_at - now), self.backoff, self.last_error
        )


class RpcClientPool:
    """Calls RPC methods on servers by address.

    ``fail_points`` (see fail_points.py) is consulted before each request is sent, with kind ``"request"``.
    """

    def __init__(
        self,
        reactor: Any = None,
        *,
        connect_timeout: float = 3.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        fail_points: FailPoints | None = None,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self.connect_timeout = connect_timeout
        self.max_frame_bytes = max_frame_bytes
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._fail_points = fail_points
        self._peers: dict[str, _Peer] = {}
        self._held: dict[_Call, None] = {}  # requests a fail point dropped or is delaying
        self._closed = False
        self._deadlines = DeadlineWheel(reactor)

    def call(self, address: str, method: str, body: Any, timeout: float | None) -> Deferred:
        """Call ``method`` at ``address`` (``"host:port"``) with ``body``; ``timeout`` in seconds (None: none).

        Cancelling the returned Deferred forgets the request (a late reply is ignored).
        """
        if type(method) is not str:
            # Caught here: the server would close the shared connection on such an envelope.
            return fail(PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, f"method must be str, not {method!r}"))
        peer = self._peers.get(address)
        if peer is None:
            if self._closed:
                return fail(PegasusError(_NETWORK_FAILURE, "the RPC client pool is closed"))
            try:
                host, port = parse_address(address)
            except PegasusError as exc:
                return fail(exc)
            peer = self._peers[address] = _Peer(self, address, host, port)
        call = _Call(peer, method, body)
        if timeout is not None:
            if timeout <= 0:
                call.fail(ErrorCode.ERR_TIMEOUT, f"{method} to {address}: the deadline has already passed")
                return call.deferred
            call.timeout = timeout
            call.deadline = deadline = self._reactor.seconds() + timeout
            call.bucket = self._deadlines.add(call, deadline)
        if self._fail_points is not None and self._hold_by_fail_point(call):
            return call.deferred
        connection = peer.connection
        if connection is not None:
            connection.send(call)
        else:
            peer.submit(call)
        return call.deferred

    def ping(self, address: str, timeout: float = 1.0) -> Deferred:
        """Call the built-in ``node.ping``; fires with ``{"role", "version"}`` of the server."""
        return self.call(address, PING_METHOD, {}, timeout)

    def peer_status(self, address: str) -> PeerStatus | None:
        """The connection state for ``address``, or None if it was never called."""
        peer = self._peers.get(address)
        return None if peer is None else peer.status()

    def close(self) -> Deferred:
        """Fail every outstanding call with ERR_NETWORK_FAILURE and close every connection."""
        self._closed = True
        message = "the RPC client pool is closed"
        for call in list(self._held):
            call.fail(_NETWORK_FAILURE, message)
        waits = []
        for peer in self._peers.values():
            if peer.connecting is not None:
                peer.connecting.cancel()
            peer.fail_waiting(message)
            if peer.connection is not None:
                peer.connection.fail_pending(message)
                waits.append(peer.connection.close())
        self._peers.clear()
        self._deadlines.clear()
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)

    def _hold_by_fail_point(self, call: _Call) -> bool:
        action = self._fail_points.before_send("request", call.peer.address, call.method)
        if action is None:
            return False
        try:
            seconds = delay_seconds(action)
        except ValueError as exc:
            call.fail(ErrorCode.ERR_UNKNOWN, str(exc))
            return True
        call.queue = self._held
        self._held[call] = None
        if seconds is not None:
            call.hold = self._reactor.callLater(seconds, self._release, call)
        return True

    def _release(self, call: _Call) -> None:
        call.hold = None
        self._held.pop(call, None)
        call.queue = None
        if self._closed:
            call.fail(_NETWORK_FAILURE, "the RPC client pool is closed")
        else:
            call.peer.submit(call)
