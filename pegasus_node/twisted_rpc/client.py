"""The RPC client: one pipelined connection per server address, shared by every caller.

``RpcClientPool.call`` returns a Deferred that fires with the reply body or fails with PegasusError:
the server's error code, ERR_TIMEOUT when the caller's deadline passes, or ERR_NETWORK_FAILURE when the
connection cannot be made or is lost while the request is in flight. Connections are made on demand; after a
failed connect the address is in backoff (50 ms doubling to 2 s by default), during which calls fail at once
with ERR_NETWORK_FAILURE, so callers retrying within their own deadline are never stuck behind it.

``RpcClientPool.notify`` sends a one-way message: nothing is returned and nothing comes back. It goes the way a
call would (written at once, queued while connecting, held by a fail point) but where a call would fail, the
notify is dropped and counted in ``pegasus_rpc_notifies{role="client"}``.
"""

from __future__ import annotations

from collections import deque
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
    encode_notify,
    encode_request,
    error_message,
    parse_reply,
)
from pegasus_node.twisted_rpc.deadline_wheel import Bucket, DeadlineWheel
from pegasus_node.twisted_rpc.fail_points import FailPoints, delay_seconds
from pegasus_node.twisted_rpc.log_limit import RateLimitedLog
from pegasus_node.twisted_rpc.metrics import CLIENT_ROLE, NOTIFY_DROPPED, NOTIFY_SENT, UNKNOWN_METHOD, RpcMetrics
from pegasus_node.twisted_rpc.server import PING_METHOD
from pegasus_node.twisted_rpc.turn_writer import TurnWriter

_log = Logger(namespace="pegasus.rpc.client")
# Notifies are dropped in floods when a peer goes away; one line per kind of drop per interval is plenty.
_notify_drop_log = RateLimitedLog(_log)

DEFAULT_MAX_QUEUED_NOTIFIES = 4096
DEFAULT_MAX_BUFFERED_NOTIFY_BYTES = 64 << 20

_ERR_OK = int(ErrorCode.ERR_OK)
_NETWORK_FAILURE = ErrorCode.ERR_NETWORK_FAILURE


class NotSentError(PegasusError):
    """The call failed before its request was written to a connection (the connect failed, the address is in
    connect backoff, the deadline passed while it waited for the connection, the body could not be encoded):
    no server can have executed it, so even a non-idempotent request may be retried. Any other failure of a
    call that was written (a lost connection, a timeout) leaves its outcome unknown."""


class PeerStatus(NamedTuple):
    state: str  # "connected" | "connecting" | "backoff" | "idle"
    in_flight: int  # sent, awaiting a reply
    waiting: int  # calls and notifies queued until the connection is up
    backoff_seconds: float  # left before a new connect may be tried
    backoff_delay: float  # the current backoff step (0 after a successful connect)
    last_error: str


class _Outgoing:
    """A call or notify on its way out. Until it is written it may wait in a ``queue`` (a peer's, while it
    connects, or the pool's, while a fail point holds it), with a ``hold`` timer when the fail point delays it."""

    __slots__ = ("peer", "method", "queue", "hold")

    def __init__(self, peer: _Peer, method: str) -> None:
        self.peer = peer
        self.method = method
        self.queue: dict[_Outgoing, None] | None = None
        self.hold: IDelayedCall | None = None

    def _leave_queue(self) -> None:
        if self.queue is not None:
            self.queue.pop(self, None)
            self.queue = None
        if self.hold is not None:
            self.hold.cancel()
            self.hold = None


class _Call(_Outgoing):
    """One outstanding call. It is in exactly one place: queued (``queue``), or sent (``conn``), or done."""

    __slots__ = ("body", "timeout", "deadline", "deferred", "bucket", "conn", "request_id")

    def __init__(self, peer: _Peer, method: str, body: Any) -> None:
        super().__init__(peer, method)
        self.body = body
        self.timeout = 0.0
        self.deadline: float | None = None
        self.deferred: Deferred = Deferred(self._cancelled)
        self.bucket: Bucket | None = None  # the deadline wheel bucket holding this call
        self.conn: _ClientConnection | None = None
        self.request_id = 0

    def _detach(self) -> None:
        conn = self.conn
        if conn is not None:
            conn.pending.pop(self.request_id, None)
            self.conn = None
        self._leave_queue()
        self.body = None

    def _cancelled(self, _deferred: Deferred) -> None:
        # The caller cancelled: stop waiting and forget the request id; the Deferred fails with CancelledError.
        if self.bucket is not None:
            self.bucket.pop(self, None)
            self.bucket = None
        self._detach()

    def expire(self) -> None:
        self.bucket = None
        # Still waiting for the connection: never written. (One a fail point holds counts as written and lost.)
        sent = self.queue is None or self.queue is not self.peer.waiting
        self._detach()
        error = PegasusError if sent else NotSentError
        self.deferred.errback(
            error(ErrorCode.ERR_TIMEOUT, f"{self.method} to {self.peer.address}: no reply within {self.timeout:g}s")
        )

    def fail(self, code: int, message: str, *, sent: bool = True) -> None:
        """``sent=False``: the request was certainly never written (NotSentError)."""
        if self.bucket is not None:
            self.bucket.pop(self, None)
            self.bucket = None
        self._detach()
        self.deferred.errback(PegasusError(code, message) if sent else NotSentError(code, message))

    def send_on(self, conn: _ClientConnection) -> None:
        conn.send(self)

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


class _Notify(_Outgoing):
    """A notify that could not be written at once. It shares the paths that queue, hold and fail calls:
    ``send_on`` writes it, and ``fail`` drops it where a call would fail."""

    __slots__ = ("frame",)

    def __init__(self, peer: _Peer, method: str, frame: bytes) -> None:
        super().__init__(peer, method)
        self.frame = frame

    def send_on(self, conn: _ClientConnection) -> None:
        conn.writer.write_now(self.frame)
        self.peer.pool._metrics.notified(self.method, NOTIFY_SENT)

    def fail(self, code: int, message: str, *, sent: bool = True) -> None:
        self._leave_queue()
        self.peer.pool._notify_dropped(self.method, code, message)


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
        self.writer = TurnWriter(self.peer.pool._reactor, self.transport)

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
            call.fail(ErrorCode.ERR_INVALID_PARAMETERS, f"{call.method}: request body cannot be encoded: {exc}",
                      sent=False)
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
        self.writer.write(frame)

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
            self.writer.close()
        return d

    def connectionLost(self, reason: Failure = None) -> None:
        self._lost = True
        self.writer.connection_lost()
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
        self.waiting: dict[_Outgoing, None] = {}
        # The notifies among ``waiting``, oldest first, so that the oldest can be dropped when there are too many.
        self.waiting_notifies: deque[_Notify] = deque()
        self.backoff = 0.0
        self.retry_at = 0.0
        self.last_error = ""

    def submit(self, call: _Outgoing) -> None:
        if self.connection is not None:
            call.send_on(self.connection)
            return
        if self.connecting is None:
            now = self.pool._reactor.seconds()
            if now < self.retry_at:
                call.fail(
                    _NETWORK_FAILURE,
                    f"{self.address} is unreachable ({self.last_error}); next connect in {self.retry_at - now:.3f}s",
                    sent=False,
                )
                return
        call.queue = self.waiting
        self.waiting[call] = None
        if type(call) is _Notify:
            notifies = self.waiting_notifies
            notifies.append(call)
            if len(notifies) > self.pool.max_queued_notifies:
                notifies.popleft().fail(ErrorCode.ERR_BUSY, f"more than {self.pool.max_queued_notifies} notifies "
                                                            f"queued for {self.address}, which is still connecting")
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
        self.waiting_notifies.clear()
        for call in waiting:
            call.queue = None
            call.send_on(connection)

    def _connect_failed(self, failure: Failure) -> None:
        self.connecting = None
        pool = self.pool
        self.backoff = pool.backoff_initial if self.backoff == 0 else min(self.backoff * 2, pool.backoff_max)
        self.retry_at = pool._reactor.seconds() + self.backoff
        self.last_error = failure.getErrorMessage() or failure.type.__name__
        self.fail_waiting(f"cannot connect to {self.address}: {self.last_error}")

    def fail_waiting(self, message: str) -> None:
        waiting, self.waiting = self.waiting, {}
        self.waiting_notifies.clear()
        for call in waiting:
            call.queue = None
            call.fail(_NETWORK_FAILURE, message, sent=False)

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

    ``fail_points`` (see fail_points.py) is consulted before each request or notify is sent, with kind
    ``"request"``. ``max_queued_notifies`` bounds the notifies queued for one address while it connects; past
    it the oldest are dropped. ``max_buffered_notify_bytes`` bounds what a connected peer that does not read
    may leave unsent; past it new notifies to it are dropped (ERR_BUSY).
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
        max_queued_notifies: int = DEFAULT_MAX_QUEUED_NOTIFIES,
        max_buffered_notify_bytes: int = DEFAULT_MAX_BUFFERED_NOTIFY_BYTES,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self.connect_timeout = connect_timeout
        self.max_frame_bytes = max_frame_bytes
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_queued_notifies = max_queued_notifies
        self.max_buffered_notify_bytes = max_buffered_notify_bytes
        self._fail_points = fail_points
        self._peers: dict[str, _Peer] = {}
        self._held: dict[_Outgoing, None] = {}  # requests a fail point dropped, and messages it is delaying
        self._metrics = RpcMetrics(CLIENT_ROLE)
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
            try:
                peer = self._new_peer(address)
            except PegasusError as exc:
                return fail(exc)
        call = _Call(peer, method, body)
        if timeout is not None:
            if timeout <= 0:
                call.fail(ErrorCode.ERR_TIMEOUT, f"{method} to {address}: the deadline has already passed", sent=False)
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

    def notify(self, address: str, method: str, body: Any) -> ErrorCode:
        """Send ``method`` with ``body`` to ``address`` and forget it: the server runs the handler and answers
        nothing. A notify that cannot be sent (see the module docstring) is dropped, counted and logged.
        Returns ERR_OK when it was written or queued, else why it was dropped (ERR_VALUE_TOO_LARGE: the body
        does not fit in a frame, so a caller that batches can split it)."""
        if type(method) is not str:
            return self._notify_dropped(UNKNOWN_METHOD, ErrorCode.ERR_INVALID_PARAMETERS,
                                        f"method must be str, not {method!r}")
        try:
            frame = encode_notify(method, body)
        except (TypeError, ValueError, OverflowError) as exc:
            return self._notify_dropped(method, ErrorCode.ERR_INVALID_PARAMETERS,
                                        f"{method}: body cannot be encoded: {exc}")
        if len(frame) - HEADER_BYTES > self.max_frame_bytes:
            return self._notify_dropped(method, ErrorCode.ERR_VALUE_TOO_LARGE, f"{method}: notify of {len(frame)} "
                                        f"bytes exceeds the frame limit of {self.max_frame_bytes}")
        peer = self._peers.get(address)
        if peer is None:
            try:
                peer = self._new_peer(address)
            except PegasusError as exc:
                return self._notify_dropped(method, exc.code, exc.message)
        if self._fail_points is not None:
            action = self._fail_points.before_send("request", address, method)
            if action is not None:
                self._hold(_Notify(peer, method, frame), action)
                return ErrorCode.ERR_OK
        connection = peer.connection
        if connection is not None:
            if connection.writer.buffered_bytes() > self.max_buffered_notify_bytes:
                # A peer that is connected but does not read (stalled, or its host swapping) would otherwise
                # make us buffer without bound. Its senders resend what matters (prepares are retried).
                return self._notify_dropped(method, ErrorCode.ERR_BUSY, f"{address} has not taken the "
                                            f"{connection.writer.buffered_bytes()} bytes already sent to it")
            # The common case, without allocating a _Notify. Sent now: a notify's caller batches its own turn.
            connection.writer.write_now(frame)
            self._metrics.notified(method, NOTIFY_SENT)
            return ErrorCode.ERR_OK
        peer.submit(_Notify(peer, method, frame))
        return ErrorCode.ERR_OK

    def _new_peer(self, address: str) -> _Peer:
        if self._closed:
            raise NotSentError(_NETWORK_FAILURE, "the RPC client pool is closed")
        host, port = parse_address(address)
        peer = self._peers[address] = _Peer(self, address, host, port)
        return peer

    def _notify_dropped(self, method: str, code: int, message: str) -> ErrorCode:
        self._metrics.notified(method, NOTIFY_DROPPED)
        # Keyed by the error code: a bounded set, unlike addresses and method names.
        _notify_drop_log.warn(("notify_dropped", code), "notify dropped ({code}): {message}",
                              code=code_name(code), message=message)
        return ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.ERR_UNKNOWN

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
        self._hold(call, action)
        return True

    def _hold(self, call: _Outgoing, action: Any) -> None:
        """Carry out a fail point's ``action`` on a message about to be sent: fail, drop or delay it."""
        try:
            seconds = delay_seconds(action)
        except ValueError as exc:
            call.fail(ErrorCode.ERR_UNKNOWN, str(exc))
            return
        if seconds is None and type(call) is _Notify:
            # A dropped call stays held until its deadline fails it; a notify has no deadline, so it goes now,
            # counted but not logged: the fault was asked for.
            self._metrics.notified(call.method, NOTIFY_DROPPED)
            return
        call.queue = self._held
        self._held[call] = None
        if seconds is not None:
            call.hold = self._reactor.callLater(seconds, self._release, call)

    def _release(self, call: _Outgoing) -> None:
        call.hold = None
        self._held.pop(call, None)
        call.queue = None
        if self._closed:
            call.fail(_NETWORK_FAILURE, "the RPC client pool is closed")
        else:
            call.peer.submit(call)
