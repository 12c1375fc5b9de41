"""HTTP on the RPC port: /version, /metrics, custom resources, and RPC still working on the same port."""

import json

import pytest_twisted
from twisted.internet.defer import succeed
from twisted.web.resource import Resource

import pegasus_node
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc import encode_request

from .rpc_test_support import connect_raw, http_get, sleep


@pytest_twisted.ensureDeferred
async def test_version_and_rpc_on_the_same_port(make_server, pool):
    server, port = make_server(role="replica")
    server.register("echo", lambda body, ctx: body)
    code, headers, body = await http_get(port, "/version")
    assert code == 200
    assert headers[b"content-type"] == [b"application/json"]
    info = json.loads(body)
    assert info["version"] == pegasus_node.__version__ and info["role"] == "replica"
    assert await pool.call(f"127.0.0.1:{port}", "echo", "rpc after http", 5.0) == "rpc after http"
    code, _, _ = await http_get(port, "/version")  # and HTTP again after RPC
    assert code == 200


@pytest_twisted.ensureDeferred
async def test_metrics_count_requests_by_method_and_code(make_server, pool):
    server, port = make_server(role="metrics-test")
    server.register("echo", lambda body, ctx: body)
    address = f"127.0.0.1:{port}"
    for _ in range(3):
        await pool.call(address, "echo", None, 5.0)
    try:
        await pool.call(address, "made.up.method", None, 5.0)
    except PegasusError as error:
        assert error.code == ErrorCode.ERR_HANDLER_NOT_FOUND
    code, headers, body = await http_get(port, "/metrics")
    assert code == 200
    assert headers[b"content-type"][0].startswith(b"text/plain")
    text = body.decode()
    assert 'pegasus_rpc_requests_total{code="ERR_OK",method="echo",role="metrics-test"} 3.0' in text
    assert 'pegasus_rpc_requests_total{code="ERR_HANDLER_NOT_FOUND",method="unknown",role="metrics-test"} 1.0' in text
    assert 'pegasus_rpc_latency_seconds_count{method="echo",role="metrics-test"} 3.0' in text
    assert "made.up.method" not in text


@pytest_twisted.ensureDeferred
async def test_unknown_path_is_404_and_rpc_still_works(make_server, pool):
    server, port = make_server()
    for path in ("/nope", "/", "/version/extra/deep"):
        code, _, _ = await http_get(port, path)
        assert code == 404, path
    assert (await pool.ping(f"127.0.0.1:{port}"))["role"] == "test"


@pytest_twisted.ensureDeferred
async def test_custom_json_endpoints_and_resources(make_server):
    server, port = make_server()

    def lookup(args):
        names = args.get("name")
        if not names:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, "name is required")
        if names[0] == "ghost":
            raise PegasusError(ErrorCode.ERR_APP_NOT_EXIST, "no app ghost")
        return succeed({"name": names[0], "raw": b"\x01bytes", "tags": args.get("tag", [])})

    async def crash(args):
        raise RuntimeError("hidden")

    class Plain(Resource):
        isLeaf = True

        def render_GET(self, request):
            return b"plain text"

    server.add_http_json("/meta/app/duplication", lookup)
    server.add_http_json(b"/crash", crash)
    server.add_http_resource("/plain", Plain())

    code, _, body = await http_get(port, "/meta/app/duplication?name=t1&tag=a&tag=b")
    assert code == 200
    assert json.loads(body) == {"name": "t1", "raw": "\x01bytes", "tags": ["a", "b"]}
    code, _, body = await http_get(port, "/meta/app/duplication")
    assert (code, json.loads(body)) == (400, {"error": "ERR_INVALID_PARAMETERS", "message": "name is required"})
    code, _, body = await http_get(port, "/meta/app/duplication?name=ghost")
    assert (code, json.loads(body)["error"]) == (404, "ERR_APP_NOT_EXIST")
    code, _, body = await http_get(port, "/crash")
    assert code == 500 and b"hidden" not in body
    code, _, body = await http_get(port, "/plain")
    assert (code, body) == (200, b"plain text")


@pytest_twisted.ensureDeferred
async def test_http_request_split_before_the_method_is_known(make_server):
    _, port = make_server()
    raw = await connect_raw(port, frames=False)
    request = b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for piece in (request[:2], request[2:3], request[3:]):
        raw.transport.write(piece)
        await sleep(0.01)
    await raw.closed
    head, _, body = raw.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["role"] == "test"


@pytest_twisted.ensureDeferred
async def test_rpc_frame_on_a_fresh_connection_is_not_mistaken_for_http(make_server):
    server, port = make_server()
    server.register("echo", lambda body, ctx: body)
    raw = await connect_raw(port)
    raw.transport.write(encode_request(1, "echo", "frame", 0))
    reply = await raw.next_reply()
    assert (reply.request_id, reply.body) == (1, "frame")
    raw.transport.loseConnection()


@pytest_twisted.ensureDeferred
async def test_keep_alive_requests_and_post_form_arguments(make_server):
    server, port = make_server()
    server.add_http_json("/args", lambda args: args)
    raw = await connect_raw(port, frames=False)
    raw.transport.write(
        b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /args?a=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 3\r\nConnection: close\r\n\r\nb=2"
    )
    await raw.closed
    responses = raw.data.split(b"HTTP/1.1 ")[1:]
    assert [r[:3] for r in responses] == [b"200", b"200"]
    assert json.loads(responses[1].partition(b"\r\n\r\n")[2]) == {"a": ["1"], "b": ["2"]}
