"""Round trips, pipelining, deadlines and connection handling over real TCP on 127.0.0.1."""

import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, DeferredList, gatherResults

import pegasus_node
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc import NotSentError, RpcContext, encode_request

from .rpc_test_support import connect_raw, sleep, wait_for


async def expect_error(d: Deferred, code: ErrorCode) -> PegasusError:
    with pytest.raises(PegasusError) as info:
        await d
    assert info.value.code == code, info.value
    return info.value


@pytest_twisted.ensureDeferred
async def test_round_trip_of_every_body_type(make_server, pool):
    server, port = make_server()
    server.register("echo", lambda body, ctx: body)
    body = {"b": b"\x00\xff", "s": "\u00e9", "i": -(2**63), "u": 2**64 - 1, "f": 1.5, "l": [None, True], 3: {}}
    assert await pool.call(f"127.0.0.1:{port}", "echo", body, 5.0) == body


@pytest_twisted.ensureDeferred
async def test_handler_sees_its_context_and_the_deadline(make_server, pool):
    server, port = make_server()
    seen = []

    def handler(body, ctx: RpcContext):
        seen.append((ctx, reactor.seconds()))
        return "ok"

    server.register("ctx", handler)
    assert await pool.call(f"127.0.0.1:{port}", "ctx", None, 30.0) == "ok"
    assert await pool.call(f"127.0.0.1:{port}", "ctx", None, None) == "ok"
    (ctx, now), (ctx_without, _) = seen
    assert ctx.method == "ctx" and ctx.request_id >= 1 and ctx.peer.startswith("127.0.0.1:")
    assert now < ctx.deadline <= now + 30.0
    assert ctx_without.deadline is None and ctx_without.request_id != ctx.request_id


@pytest_twisted.ensureDeferred
async def test_ping(make_server, pool):
    _, port = make_server(role="meta")
    assert await pool.ping(f"127.0.0.1:{port}") == {"role": "meta", "version": pegasus_node.__version__}


@pytest_twisted.ensureDeferred
async def test_deferred_and_coroutine_handlers(make_server, pool):
    server, port = make_server()

    def later(body, ctx):
        d = Deferred()
        reactor.callLater(0.01, d.callback, body + 1)
        return d

    async def coro(body, ctx):
        await sleep(0.01)
        if body < 0:
            raise PegasusError(ErrorCode.ERR_APP_NOT_EXIST, "no such app")
        return body * 2

    server.register("later", later)
    server.register("coro", coro)
    address = f"127.0.0.1:{port}"
    assert await pool.call(address, "later", 1, 5.0) == 2
    assert await pool.call(address, "coro", 21, 5.0) == 42
    error = await expect_error(pool.call(address, "coro", -1, 5.0), ErrorCode.ERR_APP_NOT_EXIST)
    assert error.message == "no such app"


@pytest_twisted.ensureDeferred
async def test_pipelined_calls_share_one_connection_and_replies_come_out_of_order(make_server, pool):
    server, port = make_server()
    count = 200
    peers = set()
    started: list[Deferred] = []

    def slow(body, ctx):
        peers.add(ctx.peer)
        d = Deferred()
        started.append(d)
        if len(started) == count:
            # Finish in the reverse order of arrival.
            for i, pending in enumerate(reversed(started)):
                reactor.callLater(0.001 * i, pending.callback, None)
        return d.addCallback(lambda _: body)

    server.register("slow", slow)
    address = f"127.0.0.1:{port}"
    completed = []
    calls = [pool.call(address, "slow", i, 30.0).addCallback(completed.append) for i in range(count)]
    await gatherResults(calls)
    assert len(peers) == 1
    assert sorted(completed) == list(range(count))
    assert completed == list(reversed(range(count)))
    assert pool.peer_status(address).state == "connected"
    assert pool.peer_status(address).in_flight == 0


@pytest_twisted.ensureDeferred
async def test_client_deadline_gives_err_timeout_and_a_late_reply_is_ignored(make_server, pool):
    server, port = make_server()
    replied = []
    server.register("late", lambda body, ctx: sleep(0.2).addCallback(lambda _: replied.append(1) or "late"))
    server.register("echo", lambda body, ctx: body)
    address = f"127.0.0.1:{port}"
    error = await expect_error(pool.call(address, "late", None, 0.05), ErrorCode.ERR_TIMEOUT)
    assert "late" in error.message and address in error.message
    assert not isinstance(error, NotSentError)  # it was written: whether it ran is unknown
    assert pool.peer_status(address).in_flight == 0  # the request id was forgotten
    await wait_for(lambda: replied)
    # The late reply precedes this one on the connection, so the client has read (and dropped) it first.
    assert await pool.call(address, "echo", "still fine", 5.0) == "still fine"


@pytest_twisted.ensureDeferred
async def test_non_positive_timeout_fails_at_once(make_server, pool):
    _, port = make_server()
    d = pool.call(f"127.0.0.1:{port}", "node.ping", {}, 0)
    assert d.called
    assert isinstance(await expect_error(d, ErrorCode.ERR_TIMEOUT), NotSentError)


@pytest_twisted.ensureDeferred
async def test_cancelling_a_call_forgets_it(make_server, pool):
    server, port = make_server()
    server.register("never", lambda body, ctx: Deferred())
    address = f"127.0.0.1:{port}"
    await pool.ping(address)
    d = pool.call(address, "never", None, 5.0)
    assert pool.peer_status(address).in_flight == 1
    d.cancel()
    with pytest.raises(CancelledError):
        await d
    assert pool.peer_status(address).in_flight == 0


@pytest_twisted.ensureDeferred
async def test_server_side_deadline_already_passed_at_dispatch(make_server):
    server, port = make_server()
    ran = []

    def blocking(body, ctx):
        time.sleep(0.05)  # holds the reactor, as a long synchronous handler would
        return "done"

    server.register("block", blocking)
    server.register("quick", lambda body, ctx: ran.append(body) or "quick")
    raw = await connect_raw(port)
    # One write, so the server reads both requests together and dispatches the second only after the first
    # has blocked for 50 ms, past the second's 10 ms deadline. (A raw client: the pool's own timer would
    # fire first in this single-process test.)
    raw.transport.write(encode_request(1, "block", None, 0) + encode_request(2, "quick", "x", 10))
    first, second = await raw.next_reply(), await raw.next_reply()
    assert (first.request_id, first.error_code, first.body) == (1, ErrorCode.ERR_OK, "done")
    assert (second.request_id, second.error_code) == (2, ErrorCode.ERR_TIMEOUT)
    assert "deadline" in second.body["message"]
    assert ran == []
    raw.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_reconnect_after_the_server_restarts_on_the_same_port(make_server, pool):
    server, port = make_server()
    server.register("who", lambda body, ctx: "first")
    address = f"127.0.0.1:{port}"
    assert await pool.call(address, "who", None, 5.0) == "first"
    await server.stop()
    await wait_for(lambda: pool.peer_status(address).state == "idle")
    await expect_error(pool.call(address, "who", None, 5.0), ErrorCode.ERR_NETWORK_FAILURE)
    restarted, same_port = make_server(port=port)
    assert same_port == port
    restarted.register("who", lambda body, ctx: "second")
    await sleep(pool.peer_status(address).backoff_seconds + 0.01)
    assert await pool.call(address, "who", None, 5.0) == "second"
    assert pool.peer_status(address).state == "connected"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest_twisted.ensureDeferred
async def test_backoff_fails_fast_doubles_and_recovers(make_server, make_pool):
    pool = make_pool(backoff_initial=0.05, backoff_max=0.1)
    port = free_port()
    address = f"127.0.0.1:{port}"
    error = await expect_error(pool.call(address, "node.ping", {}, 5.0), ErrorCode.ERR_NETWORK_FAILURE)
    assert "cannot connect" in error.message and isinstance(error, NotSentError)
    status = pool.peer_status(address)
    assert status.backoff_delay == 0.05 and status.last_error

    during = pool.call(address, "node.ping", {}, 5.0)
    assert during.called  # failed without waiting for anything
    error = await expect_error(during, ErrorCode.ERR_NETWORK_FAILURE)
    assert "unreachable" in error.message and isinstance(error, NotSentError)

    for expected_delay in (0.1, 0.1):  # doubles, then stays at the cap
        await sleep(pool.peer_status(address).backoff_seconds + 0.01)
        await expect_error(pool.call(address, "node.ping", {}, 5.0), ErrorCode.ERR_NETWORK_FAILURE)
        assert pool.peer_status(address).backoff_delay == expected_delay

    make_server(port=port)
    await sleep(pool.peer_status(address).backoff_seconds + 0.01)
    assert (await pool.ping(address))["role"] == "test"
    status = pool.peer_status(address)
    assert (status.state, status.backoff_delay, status.last_error) == ("connected", 0.0, "")


@pytest_twisted.ensureDeferred
async def test_calls_waiting_for_a_connection_that_fails_all_fail(make_pool):
    pool = make_pool()
    address = f"127.0.0.1:{free_port()}"
    results = await DeferredList([pool.call(address, "node.ping", {}, 5.0) for _ in range(5)], consumeErrors=True)
    assert all(not ok and f.value.code == ErrorCode.ERR_NETWORK_FAILURE for ok, f in results)
    assert all(isinstance(f.value, NotSentError) for _, f in results)


@pytest_twisted.ensureDeferred
async def test_connection_lost_with_requests_in_flight(make_server, pool):
    server, port = make_server()
    arrived = []
    server.register("never", lambda body, ctx: arrived.append(body) or Deferred())
    address = f"127.0.0.1:{port}"
    calls = [pool.call(address, "never", i, 30.0) for i in range(10)]
    await wait_for(lambda: len(arrived) == 10)
    assert pool.peer_status(address).in_flight == 10
    await server.stop()
    results = await DeferredList(calls, consumeErrors=True)
    for ok, failure in results:
        assert not ok and failure.value.code == ErrorCode.ERR_NETWORK_FAILURE
        assert "lost" in failure.value.message and not isinstance(failure.value, NotSentError)


@pytest_twisted.ensureDeferred
async def test_close_fails_in_flight_calls_and_later_calls(make_server, make_pool):
    server, port = make_server()
    server.register("never", lambda body, ctx: Deferred())
    pool = make_pool()
    address = f"127.0.0.1:{port}"
    in_flight = pool.call(address, "never", None, None)
    await sleep(0.05)
    await pool.close()
    assert not isinstance(await expect_error(in_flight, ErrorCode.ERR_NETWORK_FAILURE), NotSentError)
    after = await expect_error(pool.call(address, "never", None, 1.0), ErrorCode.ERR_NETWORK_FAILURE)
    assert isinstance(after, NotSentError)


@pytest_twisted.ensureDeferred
async def test_local_errors_leave_the_connection_usable(make_server, make_pool):
    server, port = make_server()
    server.register("echo", lambda body, ctx: body)
    pool = make_pool(max_frame_bytes=1000)
    address = f"127.0.0.1:{port}"
    await expect_error(pool.call(address, "echo", {"x": object()}, 5.0), ErrorCode.ERR_INVALID_PARAMETERS)
    await expect_error(pool.call(address, "echo", b"x" * 2000, 5.0), ErrorCode.ERR_VALUE_TOO_LARGE)
    await expect_error(pool.call("no-port", "echo", None, 5.0), ErrorCode.ERR_INVALID_PARAMETERS)
    assert await pool.call(address, "echo", b"x" * 100, 5.0) == b"x" * 100
