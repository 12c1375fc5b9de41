"""The RPC server: one port speaks msgpack frames (docs/rpc.md) and, on connections that open with an HTTP
method, HTTP/1.1 through twisted.web.

Handlers are ``handler(body, ctx) -> value | Deferred | coroutine``. Requests on a connection are dispatched
as they arrive (pipelined); a reply goes out when its handler finishes, so replies may be out of order.
A notify (one-way message) runs the same handler and is never answered: what goes wrong with it is counted
and logged here, rate-limited, since nobody else will hear of it.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from types import CoroutineType
from typing import Any

import twisted
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web.resource import IResource
from twisted.web.server import Site

import pegasus_node
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc.address import address_of
from pegasus_node.twisted_rpc.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    HEADER_BYTES,
    FrameDecoder,
    FrameError,
    InvalidEnvelopeError,
    Notify,
    encode_error_reply,
    encode_reply,
    parse_incoming,
)
from pegasus_node.twisted_rpc.fail_points import FailPoints, delay_seconds
from pegasus_node.twisted_rpc.http import Directory, JsonFunction, JsonResource, MetricsResource, add_resource
from pegasus_node.twisted_rpc.log_limit import RateLimitedLog
from pegasus_node.twisted_rpc.metrics import (
    NOTIFY_DROPPED_BUSY,
    NOTIFY_DROPPED_BY_FAIL_POINT,
    NOTIFY_FAILED,
    NOTIFY_HANDLED,
    NOTIFY_UNKNOWN_METHOD,
    UNKNOWN_METHOD,
    RpcMetrics,
)
from pegasus_node.twisted_rpc.turn_writer import TurnWriter

Handler = Callable[[Any, "RpcContext"], Any]

PING_METHOD = "node.ping"
DEFAULT_MAX_IN_FLIGHT = 10_000
# A frame's first 4 bytes are its length; these spell lengths of over 1 GiB, so they cannot be RPC frames.
HTTP_PREFIXES = frozenset((b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI"))

_ERR_OK = int(ErrorCode.ERR_OK)
_perf_counter = time.perf_counter


class RpcContext:
    """What a handler knows about its request. ``deadline`` is in reactor time (``reactor.seconds()``),
    None when the caller set no deadline; ``peer`` is the connection's remote ``"host:port"``. For a notify,
    ``request_id`` is 0 and ``deadline`` None."""

    __slots__ = ("peer", "method", "deadline", "request_id")

    def __init__(self, peer: str, method: str, deadline: float | None, request_id: int) -> None:
        self.peer = peer
        self.method = method
        self.deadline = deadline
        self.request_id = request_id

    def __repr__(self) -> str:
        return (
            f"RpcContext(peer={self.peer!r}, method={self.method!r}, deadline={self.deadline!r}, "
            f"request_id={self.request_id})"
        )


def _pending(result: Any) -> Deferred | None:
    """The Deferred that a handler's result stands for (a Deferred, or a coroutine run as one); None when the
    result is the value itself."""
    if isinstance(result, Deferred):
        return result
    if type(result) is CoroutineType:
        return Deferred.fromCoroutine(result)
    return None


def _invalid_parameters_message(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    return f"invalid parameters: {exc}" if str(exc) else f"invalid parameters ({type(exc).__name__})"


class _ServerConnection(Protocol):
    """One accepted connection: sniffs HTTP, else decodes frames and hands requests to the server."""

    def __init__(self, server: RpcServer) -> None:
        self._server = server
        self._decoder = FrameDecoder(server.max_frame_bytes)
        self._sniffing = True
        self._head = b""
        self._http: Protocol | None = None
        self._closing = False
        self._lost = False
        self._lost_waiters: list[Deferred] = []
        self.in_flight = 0
        self.peer = ""

    def connectionMade(self) -> None:
        self.peer = address_of(self.transport.getPeer())
        self.transport.setTcpNoDelay(True)
        self._writer = TurnWriter(self._server._reactor, self.transport)
        self._server._connections.add(self)

    def dataReceived(self, data: bytes) -> None:
        if self._http is not None:
            self._http.dataReceived(data)
            return
        if self._sniffing:
            data = self._head + data
            if len(data) < HEADER_BYTES:
                self._head = data
                return
            self._sniffing = False
            self._head = b""
            if data[:HEADER_BYTES] in HTTP_PREFIXES:
                self._switch_to_http(data)
                return
        if self._closing:
            return
        server = self._server
        dispatch = server._dispatch
        received_at = server._reactor.seconds()
        try:
            for frame in self._decoder.feed(data):
                dispatch(self, frame, received_at)
                if self._closing:
                    break
        except FrameError as exc:
            self.reject(exc)

    def _switch_to_http(self, data: bytes) -> None:
        channel = self._server._site.buildProtocol(self.transport.getPeer())
        self._http = channel
        channel.makeConnection(self.transport)
        channel.dataReceived(data)

    def reject(self, error: FrameError) -> None:
        """Answer a frame that breaks the protocol with ERR_INVALID_DATA, then close: the stream cannot be trusted."""
        if self._closing:
            return
        self._closing = True
        self._server._log.warn(
            "closing RPC connection from {peer}: {error}", peer=self.peer, error=error.message
        )
        self._server._metrics.record(UNKNOWN_METHOD, ErrorCode.ERR_INVALID_DATA, None)
        self._writer.write(encode_error_reply(error.request_id, ErrorCode.ERR_INVALID_DATA, error.message))
        self._writer.close()

    def write_frame(self, frame: bytes) -> None:
        if not self._lost:
            self._writer.write(frame)

    def close(self) -> Deferred:
        if self._lost:
            return succeed(None)
        d: Deferred = Deferred()
        self._lost_waiters.append(d)
        self._closing = True
        self._writer.close()
        return d

    def connectionLost(self, reason: Failure = None) -> None:
        self._lost = True
        self._writer.connection_lost()
        self._server._connections.discard(self)
        if self._http is not None:
            self._http.connectionLost(reason)
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)


class _ServerFactory(ServerFactory):
    noisy = False

    def __init__(self, server: RpcServer) -> None:
        self._server = server

    def buildProtocol(self, addr: Any) -> _ServerConnection:
        return _ServerConnection(self._server)


class RpcServer:
    """Serves registered RPC methods, plus HTTP, on every port it listens on.

    ``fail_points`` (see fail_points.py) is consulted before each reply is sent, with kind ``"reply"``, and
    before each notify's handler runs, with kind ``"notify"``.
    ``max_in_flight_per_connection`` caps the unfinished asynchronous requests and notifies of one
    connection; further requests get ERR_BUSY, and further notifies are dropped, until some finish.
    """

    def __init__(
        self,
        role: str,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        reactor: Any = None,
        fail_points: FailPoints | None = None,
        max_in_flight_per_connection: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.role = role
        self.max_frame_bytes = max_frame_bytes
        self.max_in_flight_per_connection = max_in_flight_per_connection
        self._reactor = reactor
        self._fail_points = fail_points
        self._handlers: dict[str, Handler] = {}
        self._connections: set[_ServerConnection] = set()
        self._ports: list[IListeningPort] = []
        self._metrics = RpcMetrics(role)
        self._log = Logger(namespace=f"pegasus.rpc.{role}", source=self)
        self._notify_log = RateLimitedLog(self._log, clock=reactor.seconds)
        self._started_at = time.time()
        self._http_root = Directory()
        # The site is never started, so twisted.web writes no access log of its own.
        self._site = Site(self._http_root, reactor=reactor)
        self._factory = _ServerFactory(self)
        self.register(PING_METHOD, self._ping)
        self.add_http_json("/version", self._version)
        self.add_http_resource("/metrics", MetricsResource())

    # -- configuration ---------------------------------------------------------------------------------

    def register(self, method: str, handler: Handler) -> None:
        """Serve ``method`` with ``handler(body, ctx)``; it may return a value, a Deferred or a coroutine."""
        if not isinstance(method, str) or not method:
            raise ValueError(f"method name must be a non-empty str, not {method!r}")
        if not callable(handler):
            raise TypeError(f"handler for {method!r} is not callable")
        if method in self._handlers:
            raise ValueError(f"method {method!r} is already registered")
        self._handlers[method] = handler

    @property
    def methods(self) -> list[str]:
        return sorted(self._handlers)

    def add_http_resource(self, path: bytes | str, resource: IResource) -> None:
        """Serve a twisted.web resource at ``path`` (e.g. ``"/meta/app/duplication"``)."""
        add_resource(self._http_root, path, resource)

    def add_http_json(self, path: bytes | str, fn: JsonFunction) -> None:
        """Serve ``fn(args)`` as JSON at ``path``; ``args`` is ``{"name": ["value", ...]}`` from the query."""
        self.add_http_resource(path, JsonResource(fn))

    # -- lifecycle -------------------------------------------------------------------------------------

    def listen(self, port: int, interface: str = "127.0.0.1") -> IListeningPort:
        """Listen on ``port`` (0: any free port; read it from ``.getHost().port``)."""
        listening = self._reactor.listenTCP(port, self._factory, interface=interface)
        self._ports.append(listening)
        self._log.info(
            "{role} serving RPC and HTTP on {host}:{port}",
            role=self.role,
            host=listening.getHost().host,
            port=listening.getHost().port,
        )
        return listening

    def stop(self) -> Deferred:
        """Stop listening and close every connection; fires when all are closed."""
        ports, self._ports = self._ports, []
        waits = [d for d in (p.stopListening() for p in ports) if d is not None]
        waits.extend(conn.close() for conn in list(self._connections))
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)

    # -- built-in endpoints ----------------------------------------------------------------------------

    def _ping(self, body: Any, ctx: RpcContext) -> dict:
        return {"role": self.role, "version": pegasus_node.__version__}

    def _version(self, args: dict) -> dict:
        return {
            "version": pegasus_node.__version__,
            "role": self.role,
            "python": platform.python_version(),
            "twisted": twisted.__version__,
            "start_time": int(self._started_at),
            "uptime_seconds": round(time.time() - self._started_at, 3),
        }

    # -- dispatch --------------------------------------------------------------------------------------

    def _dispatch(self, conn: _ServerConnection, frame: Any, received_at: float) -> None:
        try:
            envelope = parse_incoming(frame)
        except InvalidEnvelopeError as exc:
            conn.reject(exc)
            return
        if type(envelope) is Notify:
            self._dispatch_notify(conn, envelope.method, envelope.body)
            return
        request_id, method, body, timeout_ms = envelope
        handler = self._handlers.get(method)
        if handler is None:
            self._send(conn, request_id, UNKNOWN_METHOD, ErrorCode.ERR_HANDLER_NOT_FOUND,
                       {"message": f"unknown method {method!r}"}, None)
            return
        if timeout_ms:
            deadline = received_at + timeout_ms / 1000.0
            if self._reactor.seconds() >= deadline:
                self._send(conn, request_id, method, ErrorCode.ERR_TIMEOUT,
                           {"message": f"{method}: deadline passed before the request was started"}, None)
                return
        else:
            deadline = None
        if conn.in_flight >= self.max_in_flight_per_connection:
            self._send(conn, request_id, method, ErrorCode.ERR_BUSY,
                       {"message": f"too many requests in flight on this connection ({conn.in_flight})"}, None)
            return
        started = _perf_counter()
        try:
            result = handler(body, RpcContext(conn.peer, method, deadline, request_id))
        except Exception:
            self._send_failure(Failure(), conn, request_id, method, started)
            return
        pending = _pending(result)
        if pending is None:
            self._send(conn, request_id, method, _ERR_OK, result, started)
            return
        conn.in_flight += 1
        args = (conn, request_id, method, started)
        pending.addCallbacks(self._finish_result, self._finish_failure, callbackArgs=args, errbackArgs=args)

    def _finish_result(self, result: Any, conn: _ServerConnection, request_id: int, method: str,
                       started: float) -> None:
        conn.in_flight -= 1
        self._send(conn, request_id, method, _ERR_OK, result, started)

    def _finish_failure(self, failure: Failure, conn: _ServerConnection, request_id: int, method: str,
                        started: float) -> None:
        conn.in_flight -= 1
        self._send_failure(failure, conn, request_id, method, started)

    def _send_failure(self, failure: Failure, conn: _ServerConnection, request_id: int, method: str,
                      started: float) -> None:
        exc = failure.value
        if isinstance(exc, PegasusError):
            code, message = exc.code, exc.message
        elif isinstance(exc, (KeyError, TypeError, ValueError)):
            code, message = ErrorCode.ERR_INVALID_PARAMETERS, _invalid_parameters_message(exc)
            self._log.failure("{method} rejected its parameters: {message}", failure=failure,
                              level=LogLevel.debug, method=method, message=message)
        else:
            code = ErrorCode.ERR_UNKNOWN
            message = f"internal error ({type(exc).__name__}) in {method}; see the server log"
            self._log.failure("RPC handler for {method} failed", failure=failure, method=method)
        self._send(conn, request_id, method, code, {"message": message}, started)

    def _send(self, conn: _ServerConnection, request_id: int, method: str, code: int, body: Any,
              started: float | None) -> None:
        try:
            frame = encode_reply(request_id, code, body)
        except Exception:
            self._log.failure("reply of {method} cannot be encoded as msgpack", method=method)
            code = ErrorCode.ERR_UNKNOWN
            frame = encode_error_reply(request_id, code, f"internal error: the reply of {method} cannot be encoded")
        if len(frame) - HEADER_BYTES > self.max_frame_bytes:
            message = f"the reply of {method} ({len(frame)} bytes) exceeds the frame limit of {self.max_frame_bytes}"
            self._log.error("{message}", message=message)
            code = ErrorCode.ERR_VALUE_TOO_LARGE
            frame = encode_error_reply(request_id, code, message)
        self._metrics.record(method, code, None if started is None else _perf_counter() - started)
        if self._fail_points is not None:
            action = self._fail_points.before_send("reply", conn.peer, method)
            if action is not None:
                seconds = delay_seconds(action)
                if seconds is not None:
                    self._reactor.callLater(seconds, conn.write_frame, frame)
                return
        conn.write_frame(frame)

    # -- notifies --------------------------------------------------------------------------------------

    def _dispatch_notify(self, conn: _ServerConnection, method: str, body: Any) -> None:
        handler = self._handlers.get(method)
        if handler is None:
            self._metrics.notified(UNKNOWN_METHOD, NOTIFY_UNKNOWN_METHOD)
            # Keyed by the kind of error only: method names come from the peer and are unbounded.
            self._notify_log.warn(NOTIFY_UNKNOWN_METHOD, "dropped a notify of unknown method {method!r} from {peer}",
                                  method=method[:100], peer=conn.peer)
            return
        if self._fail_points is not None:
            action = self._fail_points.before_send("notify", conn.peer, method)
            if action is not None:
                self._hold_notify(action, conn, handler, method, body)
                return
        self._run_notify(conn, handler, method, body)

    def _hold_notify(self, action: Any, conn: _ServerConnection, handler: Handler, method: str, body: Any) -> None:
        try:
            seconds = delay_seconds(action)
        except ValueError as exc:
            self._notify_log.warn(("fail_point_error", method), "dropped a notify of {method}: {error}",
                                  method=method, error=str(exc))
            seconds = None
        if seconds is None:
            self._metrics.notified(method, NOTIFY_DROPPED_BY_FAIL_POINT)
        else:
            self._reactor.callLater(seconds, self._run_notify, conn, handler, method, body)

    def _run_notify(self, conn: _ServerConnection, handler: Handler, method: str, body: Any) -> None:
        if conn._lost:
            return  # delayed by a fail point past the end of its connection: lost with it
        if conn.in_flight >= self.max_in_flight_per_connection:
            self._metrics.notified(method, NOTIFY_DROPPED_BUSY)
            self._notify_log.warn((NOTIFY_DROPPED_BUSY, method),
                                  "dropped a notify of {method} from {peer}: {n} handlers in flight on its connection",
                                  method=method, peer=conn.peer, n=conn.in_flight)
            return
        try:
            result = handler(body, RpcContext(conn.peer, method, None, 0))
        except Exception:
            self._notify_failed(Failure(), method, conn.peer)
            return
        pending = _pending(result)
        if pending is None:
            self._metrics.notified(method, NOTIFY_HANDLED)
            return
        conn.in_flight += 1
        args = (conn, method)
        pending.addCallbacks(self._finish_notify, self._finish_notify_failure, callbackArgs=args, errbackArgs=args)

    def _finish_notify(self, result: Any, conn: _ServerConnection, method: str) -> None:
        conn.in_flight -= 1
        self._metrics.notified(method, NOTIFY_HANDLED)

    def _finish_notify_failure(self, failure: Failure, conn: _ServerConnection, method: str) -> None:
        conn.in_flight -= 1
        self._notify_failed(failure, method, conn.peer)

    def _notify_failed(self, failure: Failure, method: str, peer: str) -> None:
        self._metrics.notified(method, NOTIFY_FAILED)
        exc = failure.value
        if isinstance(exc, (PegasusError, KeyError, TypeError, ValueError)):
            # An error the handler raised on purpose, or a body of the wrong shape: a request would be answered
            # with its code, so a line without a traceback says enough.
            message = exc.message if isinstance(exc, PegasusError) else _invalid_parameters_message(exc)
            self._notify_log.warn(("rejected", method), "notify of {method} from {peer} rejected: {message}",
                                  method=method, peer=peer, message=message)
        else:
            self._notify_log.failure((NOTIFY_FAILED, method), "notify handler for {method} failed", failure,
                                     method=method)
