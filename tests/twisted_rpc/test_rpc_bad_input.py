"""Every kind of bad input gets its documented answer, and the node keeps serving."""

import struct

import pytest_twisted
from twisted.internet.defer import Deferred

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc import encode_frame, encode_request, expect

from .rpc_test_support import LogCapture, connect_raw, sleep, wait_for

MAX_FRAME = 4096


def frame_of(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


@pytest_twisted.async_fixture
async def serving(make_server):
    server, port = make_server(max_frame_bytes=MAX_FRAME)
    server.register("echo", lambda body, ctx: body)

    def create(body, ctx):
        args = expect(body, {"name": str, "partition_count": int})
        return {"created": args["name"]}

    server.register("create", create)
    return server, port


async def assert_still_serving(pool, port: int) -> None:
    """A good request on a new connection is answered."""
    assert await pool.call(f"127.0.0.1:{port}", "echo", "alive", 5.0) == "alive"


async def rejected_then_closed(port: int, data: bytes, request_id: int = 0) -> str:
    raw = await connect_raw(port)
    raw.transport.write(data)
    reply = await raw.next_reply()
    await raw.closed
    assert (reply.request_id, reply.error_code) == (request_id, ErrorCode.ERR_INVALID_DATA)
    return reply.body["message"]


@pytest_twisted.ensureDeferred
async def test_frame_over_the_size_limit(serving, pool):
    _, port = serving
    message = await rejected_then_closed(port, struct.pack(">I", MAX_FRAME + 1) + b"\0" * 64)
    assert str(MAX_FRAME + 1) in message
    await assert_still_serving(pool, port)


@pytest_twisted.ensureDeferred
async def test_payload_that_is_not_msgpack(serving, pool):
    _, port = serving
    message = await rejected_then_closed(port, frame_of(b"\xc1\xc1\xc1"))
    assert "not msgpack" in message
    await assert_still_serving(pool, port)


@pytest_twisted.ensureDeferred
async def test_msgpack_that_is_not_a_request_envelope(serving, pool):
    _, port = serving
    await rejected_then_closed(port, encode_frame({"method": "echo"}))
    await rejected_then_closed(port, encode_frame([1, 5, 0, {}]), request_id=5)  # a reply sent to a server
    message = await rejected_then_closed(port, encode_frame([0, 7, 123, {}, 0]), request_id=7)
    assert "request envelope" in message
    await assert_still_serving(pool, port)


@pytest_twisted.ensureDeferred
async def test_malformed_notify_envelope_is_rejected_like_any_bad_envelope(serving, pool):
    _, port = serving
    for envelope in ([2, 123, {}], [2, "echo"], [2, b"echo", {}], [2.0, "echo", {}]):
        message = await rejected_then_closed(port, encode_frame(envelope))
        assert "envelope" in message, envelope
    await assert_still_serving(pool, port)


@pytest_twisted.ensureDeferred
async def test_requests_before_a_bad_frame_are_still_answered(serving):
    _, port = serving
    raw = await connect_raw(port)
    raw.transport.write(encode_request(1, "echo", "first", 0) + frame_of(b"\xc1"))
    first = await raw.next_reply()
    assert (first.request_id, first.error_code, first.body) == (1, ErrorCode.ERR_OK, "first")
    rejection = await raw.next_reply()
    assert rejection.error_code == ErrorCode.ERR_INVALID_DATA
    await raw.closed


@pytest_twisted.ensureDeferred
async def test_unknown_method_keeps_the_connection_open(serving):
    _, port = serving
    raw = await connect_raw(port)
    raw.transport.write(encode_request(1, "no.such", {}, 0))
    reply = await raw.next_reply()
    assert (reply.request_id, reply.error_code) == (1, ErrorCode.ERR_HANDLER_NOT_FOUND)
    assert "no.such" in reply.body["message"]
    raw.transport.write(encode_request(2, "echo", "same connection", 0))
    reply = await raw.next_reply()
    assert (reply.request_id, reply.error_code, reply.body) == (2, ErrorCode.ERR_OK, "same connection")
    raw.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_bytes_trickling_in_one_at_a_time(serving):
    _, port = serving
    raw = await connect_raw(port)
    data = encode_request(3, "echo", b"slow", 0)
    for i in range(len(data)):
        raw.transport.write(data[i : i + 1])
        await sleep(0)
    reply = await raw.next_reply()
    assert (reply.request_id, reply.body) == (3, b"slow")
    raw.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_body_of_the_wrong_shape(serving, pool):
    server, port = serving
    address = f"127.0.0.1:{port}"

    def key_error(body, ctx):
        return body["missing"]

    def type_error(body, ctx):
        return body + 1

    server.register("key_error", key_error)
    server.register("type_error", type_error)
    cases = [
        ("create", {"name": "t", "partition_count": "8"}, "field 'partition_count' must be int"),
        ("create", {"name": "t", "partition_count": True}, "field 'partition_count' must be int"),
        ("create", {"name": "t"}, "missing field 'partition_count'"),
        ("create", [1, 2], "request body must be a map"),
        ("key_error", {}, "missing field 'missing'"),
        ("type_error", "text", "invalid parameters"),
    ]
    for method, body, expected in cases:
        d = pool.call(address, method, body, 5.0)
        try:
            await d
        except PegasusError as error:
            assert error.code == ErrorCode.ERR_INVALID_PARAMETERS
            assert expected in error.message, (method, body, error.message)
        else:
            raise AssertionError(f"{method}({body!r}) succeeded")
    assert await pool.call(address, "create", {"name": "t", "partition_count": 8}, 5.0) == {"created": "t"}


@pytest_twisted.ensureDeferred
async def test_unexpected_exception_is_logged_not_sent_and_the_node_keeps_serving(serving, pool):
    server, port = serving

    def broken(body, ctx):
        raise RuntimeError("secret internal detail")

    async def broken_later(body, ctx):
        await sleep(0.001)
        raise ZeroDivisionError("also secret")

    server.register("broken", broken)
    server.register("broken_later", broken_later)
    address = f"127.0.0.1:{port}"
    with LogCapture() as log:
        for method, exc_type in (("broken", RuntimeError), ("broken_later", ZeroDivisionError)):
            try:
                await pool.call(address, method, None, 5.0)
            except PegasusError as error:
                assert error.code == ErrorCode.ERR_UNKNOWN
                assert "secret" not in error.message and "Traceback" not in error.message
                assert exc_type.__name__ in error.message
            else:
                raise AssertionError("no error")
    logged = [f for f in log.failures() if f.check(RuntimeError, ZeroDivisionError)]
    assert [f.type for f in logged] == [RuntimeError, ZeroDivisionError]
    assert "secret internal detail" in logged[0].getTraceback()
    await assert_still_serving(pool, port)


@pytest_twisted.ensureDeferred
async def test_unencodable_reply_is_err_unknown(serving, pool):
    server, port = serving
    server.register("weird", lambda body, ctx: {"value": object()})
    address = f"127.0.0.1:{port}"
    with LogCapture():
        try:
            await pool.call(address, "weird", None, 5.0)
        except PegasusError as error:
            assert error.code == ErrorCode.ERR_UNKNOWN
        else:
            raise AssertionError("no error")
    await assert_still_serving(pool, port)


@pytest_twisted.ensureDeferred
async def test_reply_over_the_frame_limit_is_err_value_too_large(serving, pool):
    server, port = serving
    server.register("grow", lambda body, ctx: b"x" * MAX_FRAME)
    address = f"127.0.0.1:{port}"
    with LogCapture() as log:
        try:
            await pool.call(address, "grow", None, 5.0)
        except PegasusError as error:
            assert error.code == ErrorCode.ERR_VALUE_TOO_LARGE
            assert str(MAX_FRAME) in error.message
        else:
            raise AssertionError("an oversize reply was sent")
    assert any("exceeds the frame limit" in e.get("message", "") for e in log.events)
    assert await pool.call(address, "echo", "same connection", 5.0) == "same connection"
    assert pool.peer_status(address).state == "connected"


@pytest_twisted.ensureDeferred
async def test_in_flight_cap_answers_err_busy(make_server):
    server, port = make_server(max_in_flight_per_connection=2)
    pending = []
    server.register("hold", lambda body, ctx: pending.append(Deferred()) or pending[-1])
    raw = await connect_raw(port)
    raw.transport.write(b"".join(encode_request(i, "hold", None, 0) for i in (1, 2, 3)))
    busy = await raw.next_reply()
    assert (busy.request_id, busy.error_code) == (3, ErrorCode.ERR_BUSY)
    pending[0].callback("one")
    done = await raw.next_reply()
    assert (done.request_id, done.body) == (1, "one")
    raw.transport.write(encode_request(4, "hold", None, 0))  # room again
    await wait_for(lambda: len(pending) == 3)
    for d in pending[1:]:
        d.callback("rest")
    assert {(await raw.next_reply()).request_id for _ in range(2)} == {2, 4}
    raw.transport.loseConnection()
