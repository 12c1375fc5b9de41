"""One-way notifies: delivered to the same handlers as requests, never answered, dropped where a call fails."""

import pytest_twisted
from prometheus_client import REGISTRY
from twisted.internet.defer import Deferred

from pegasus_node.errors import ErrorCode
from pegasus_node.twisted_rpc import encode_notify, encode_reply, encode_request

from .rpc_test_support import LogCapture, connect_raw, sleep, wait_for


def client_notifies(outcome: str, method: str = "count") -> float:
    value = REGISTRY.get_sample_value(
        "pegasus_rpc_notifies_total", {"role": "client", "method": method, "outcome": outcome}
    )
    return value or 0.0


def server_notifies(outcome: str, method: str) -> float:
    value = REGISTRY.get_sample_value(
        "pegasus_rpc_notifies_total", {"role": "test", "method": method, "outcome": outcome}
    )
    return value or 0.0


@pytest_twisted.async_fixture
async def recording_server(make_server):
    """A server whose ``count`` handler records (body, ctx); ``echo`` answers."""
    server, port = make_server()
    seen = []
    server.register("count", lambda body, ctx: seen.append((body, ctx)) or len(seen))
    server.register("echo", lambda body, ctx: body)
    return server, port, seen


@pytest_twisted.ensureDeferred
async def test_pool_notify_runs_the_handler_with_a_notify_context(recording_server, pool):
    _, port, seen = recording_server
    sent_before = client_notifies("sent")
    assert pool.notify(f"127.0.0.1:{port}", "count", {"n": 1}) == ErrorCode.ERR_OK
    await wait_for(lambda: seen)
    [(body, ctx)] = seen
    assert body == {"n": 1}
    assert (ctx.method, ctx.request_id, ctx.deadline) == ("count", 0, None)
    assert ctx.peer.startswith("127.0.0.1:")
    assert client_notifies("sent") == sent_before + 1


@pytest_twisted.ensureDeferred
async def test_a_notify_is_never_answered(recording_server):
    _, port, seen = recording_server
    raw = await connect_raw(port)
    raw.transport.write(encode_notify("count", "one-way"))
    await wait_for(lambda: seen)
    # The request after it is answered; had the notify been answered, its reply would have come first.
    raw.transport.write(encode_request(1, "echo", "after", 0))
    await raw.next_reply()
    assert raw.data == encode_reply(1, ErrorCode.ERR_OK, "after")
    raw.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_unknown_method_and_failing_handlers_leave_the_connection_usable(recording_server):
    server, port, seen = recording_server

    def broken(body, ctx):
        raise RuntimeError("sync failure")

    def broken_later(body, ctx):
        d = Deferred()
        d.errback(ZeroDivisionError("async failure"))
        return d

    server.register("broken", broken)
    server.register("broken_later", broken_later)
    failed_before = server_notifies("failed", "broken")
    raw = await connect_raw(port)
    with LogCapture() as log:
        raw.transport.write(
            encode_notify("no.such", {}) + encode_notify("broken", 1) + encode_notify("broken_later", 2)
            + encode_notify("count", "still dispatched") + encode_request(7, "echo", "usable", 0)
        )
        reply = await raw.next_reply()
    assert (reply.request_id, reply.error_code, reply.body) == (7, ErrorCode.ERR_OK, "usable")
    assert raw.data == encode_reply(7, ErrorCode.ERR_OK, "usable")  # nothing for the three failed notifies
    assert [body for body, _ in seen] == ["still dispatched"]
    assert any("unknown method" in e.get("log_format", "") and e.get("method") == "no.such" for e in log.events)
    assert {f.type for f in log.failures()} == {RuntimeError, ZeroDivisionError}
    assert server_notifies("failed", "broken") == failed_before + 1
    raw.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_a_flood_of_bad_notifies_logs_one_line(recording_server):
    _, port, _ = recording_server
    raw = await connect_raw(port)
    with LogCapture() as log:
        raw.transport.write(b"".join(encode_notify(f"no.such.{i}", i) for i in range(200)))
        raw.transport.write(encode_request(1, "echo", "done", 0))
        await raw.next_reply()
    lines = [e for e in log.events if "unknown method" in e.get("log_format", "")]
    assert len(lines) == 1  # each server limits its own log: one line per kind of error per 10 s
    raw.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_notifies_and_calls_queued_while_connecting_go_out_in_order(recording_server, pool):
    _, port, seen = recording_server
    address = f"127.0.0.1:{port}"
    for i in range(50):
        pool.notify(address, "count", i)
    call = pool.call(address, "count", "call", 5.0)
    pool.notify(address, "count", 50)
    status = pool.peer_status(address)
    assert (status.state, status.waiting) == ("connecting", 52)
    assert await call == 51
    await wait_for(lambda: len(seen) == 52)
    assert [body for body, _ in seen] == [*range(50), "call", 50]


@pytest_twisted.ensureDeferred
async def test_the_queue_while_connecting_is_bounded_by_dropping_the_oldest(recording_server, make_pool):
    _, port, seen = recording_server
    address = f"127.0.0.1:{port}"
    pool = make_pool(max_queued_notifies=10)
    dropped_before = client_notifies("dropped")
    with LogCapture():
        for i in range(25):
            pool.notify(address, "count", i)
    assert pool.peer_status(address).waiting == 10
    assert await pool.call(address, "echo", "sync", 5.0) == "sync"
    assert [body for body, _ in seen] == list(range(15, 25))
    assert client_notifies("dropped") == dropped_before + 15


@pytest_twisted.ensureDeferred
async def test_notifies_to_an_unreachable_peer_are_dropped(make_server, make_pool):
    server, port = make_server()
    await server.stop()  # nothing listens on the port any more
    address = f"127.0.0.1:{port}"
    pool = make_pool(backoff_initial=5.0)
    dropped_before = client_notifies("dropped")
    with LogCapture() as log:
        pool.notify(address, "count", "queued, then the connect fails")
        await wait_for(lambda: pool.peer_status(address).state == "backoff")
        pool.notify(address, "count", "in backoff: dropped at once")
    assert pool.peer_status(address).waiting == 0
    assert client_notifies("dropped") == dropped_before + 2
    assert any("notify dropped" in e.get("log_format", "") for e in log.events)


@pytest_twisted.ensureDeferred
async def test_a_notify_that_cannot_be_sent_is_dropped_not_raised(recording_server, make_pool):
    _, port, seen = recording_server
    address = f"127.0.0.1:{port}"
    pool = make_pool(max_frame_bytes=1024)
    with LogCapture():
        pool.notify(address, "count", {"x": object()})
        pool.notify(address, "count", b"x" * 2048)
        pool.notify(address, b"count", None)
        pool.notify("no port", "count", None)
    assert await pool.call(address, "echo", "sync", 5.0) == "sync"
    assert seen == []


@pytest_twisted.ensureDeferred
async def test_notifies_after_the_pool_closed_are_dropped(recording_server, make_pool):
    _, port, seen = recording_server
    pool = make_pool()
    await pool.close()
    with LogCapture():
        pool.notify(f"127.0.0.1:{port}", "count", "too late")
    await sleep(0.05)
    assert seen == []


@pytest_twisted.ensureDeferred
async def test_notifies_to_a_peer_that_stopped_reading_are_dropped_once_too_much_is_unsent(make_pool):
    """A connected peer that reads nothing cannot make the sender buffer without bound."""
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, Protocol

    class Deaf(Protocol):
        def connectionMade(self) -> None:
            self.transport.pauseProducing()  # never read: the kernel buffers fill, then Twisted's

    listening = reactor.listenTCP(0, Factory.forProtocol(Deaf), interface="127.0.0.1")
    try:
        pool = make_pool(max_buffered_notify_bytes=1 << 20)
        address = f"127.0.0.1:{listening.getHost().port}"
        await pool.call(address, "node.ping", {}, 0.2).addErrback(lambda _: None)  # connect (no answer comes)
        dropped_before = client_notifies("dropped", "flood")
        body = b"x" * (256 * 1024)
        codes = []
        for _ in range(400):  # 100 MB offered: far beyond the kernel's socket buffers and the 1 MiB bound
            codes.append(pool.notify(address, "flood", body))
            await sleep(0)
            if codes[-1] == ErrorCode.ERR_BUSY:
                break
        assert codes[-1] == ErrorCode.ERR_BUSY
        assert client_notifies("dropped", "flood") == dropped_before + 1
        await pool.close()  # returns although the peer will never take what is buffered for it
    finally:
        await listening.stopListening()
