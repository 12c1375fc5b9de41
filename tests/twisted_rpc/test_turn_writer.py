"""TurnWriter: a connection's frames of one reactor turn go out together, straight on the socket when Twisted
holds nothing before them, and always in order."""

from __future__ import annotations

import pytest_twisted
from twisted.internet.defer import gatherResults

from pegasus_node.errors import ErrorCode
from pegasus_node.twisted_rpc.turn_writer import TurnWriter, send_now

from .rpc_test_support import wait_for


class _Socket:
    def __init__(self, takes: int | None = None, error: type[OSError] | None = None) -> None:
        self.takes = takes  # bytes the kernel accepts per send (None: all)
        self.error = error
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error()
        n = len(data) if self.takes is None else min(self.takes, len(data))
        self.sent.append(bytes(data[:n]))
        return n


class _TcpTransport:
    """The FileDescriptor attributes send_now reads, and a write() that records what Twisted would buffer."""

    def __init__(self, sock: _Socket) -> None:
        self.socket = sock
        self.connected = True
        self.disconnecting = False
        self.dataBuffer = b""
        self._tempDataBuffer: list[bytes] = []
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def loseConnection(self) -> None:
        self.closing = "lose"

    def abortConnection(self) -> None:
        self.closing = "abort"


class _Reactor:
    """Not asyncio: call_soon falls back to callLater(0), which this records."""

    def __init__(self) -> None:
        self.later: list = []

    def callLater(self, delay, fn, *args):
        call = _Call(fn, args)
        self.later.append(call)
        return call

    def run_later(self) -> None:
        later, self.later = self.later, []
        for call in later:
            if not call.cancelled:
                call.fn(*call.args)


class _Call:
    def __init__(self, fn, args) -> None:
        self.fn, self.args, self.cancelled = fn, args, False

    def cancel(self) -> None:
        self.cancelled = True


def test_an_idle_transport_gets_the_bytes_straight_on_its_socket() -> None:
    transport = _TcpTransport(_Socket())
    send_now(transport, b"frame")
    assert transport.socket.sent == [b"frame"] and transport.written == []


def test_what_the_kernel_does_not_take_goes_through_twisted() -> None:
    transport = _TcpTransport(_Socket(takes=3))
    send_now(transport, b"abcdefgh")
    assert transport.socket.sent == [b"abc"] and transport.written == [b"defgh"]


def test_bytes_queued_in_twisted_keep_their_place_in_line() -> None:
    for busy in ({"dataBuffer": b"older"}, {"_tempDataBuffer": [b"older"]}, {"disconnecting": True}):
        transport = _TcpTransport(_Socket())
        for name, value in busy.items():
            setattr(transport, name, value)
        send_now(transport, b"newer")
        assert transport.socket.sent == [] and transport.written == [b"newer"], busy


def test_a_socket_error_is_left_to_twisted_to_report() -> None:
    for error in (BlockingIOError, ConnectionResetError):
        transport = _TcpTransport(_Socket(error=error))
        send_now(transport, b"frame")
        assert transport.written == [b"frame"], error


def test_a_transport_that_is_not_tcp_is_written_through_twisted() -> None:
    class Plain:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.written.append(data)

    transport = Plain()
    send_now(transport, b"frame")
    assert transport.written == [b"frame"]


def test_frames_of_one_turn_leave_in_one_send_at_its_end() -> None:
    reactor, transport = _Reactor(), _TcpTransport(_Socket())
    writer = TurnWriter(reactor, transport)
    writer.write(b"one,")
    writer.write(b"two,")
    assert transport.socket.sent == []
    writer.write_now(b"three")  # after what the turn wrote, at once
    assert transport.socket.sent == [b"one,two,three"]
    reactor.run_later()  # the end-of-turn flush finds nothing left
    assert transport.socket.sent == [b"one,two,three"]
    writer.write(b"four")
    reactor.run_later()
    assert transport.socket.sent == [b"one,two,three", b"four"]


def test_close_sends_what_is_left_then_drops_a_peer_that_does_not_take_it() -> None:
    reactor, transport = _Reactor(), _TcpTransport(_Socket())
    writer = TurnWriter(reactor, transport)
    writer.write(b"last words")
    writer.close()
    assert transport.socket.sent == [b"last words"] and transport.closing == "lose"
    reactor.run_later()  # the grace ran out and the connection is still there
    assert transport.closing == "abort"


def test_a_connection_lost_in_time_is_not_aborted() -> None:
    reactor, transport = _Reactor(), _TcpTransport(_Socket())
    writer = TurnWriter(reactor, transport)
    writer.close()
    writer.connection_lost()
    reactor.run_later()
    assert transport.closing == "lose"


@pytest_twisted.ensureDeferred
async def test_large_pipelined_calls_and_notifies_arrive_whole_and_in_order(make_server, make_pool) -> None:
    """Bodies far beyond the socket buffers: sends are partial, and later turns find Twisted still holding bytes."""
    server, port = make_server()
    seen: list[int] = []
    server.register("echo", lambda body, ctx: body)
    server.register("mark", lambda body, ctx: seen.append(body))
    pool = make_pool()
    address = f"127.0.0.1:{port}"
    bodies = [bytes([i]) * (512 * 1024 + i) for i in range(24)]
    calls = []
    for i, body in enumerate(bodies):
        calls.append(pool.call(address, "echo", body, 30.0))
        assert pool.notify(address, "mark", i) == ErrorCode.ERR_OK
    replies = await gatherResults(calls)
    assert replies == bodies
    await wait_for(lambda: len(seen) == len(bodies))
    assert seen == list(range(len(bodies)))
