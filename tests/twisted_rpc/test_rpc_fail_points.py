"""The fault-injection hook, driven by a small real fail-point object."""

import pytest
import pytest_twisted

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.fail_points import FailPointRegistry
from pegasus_node.twisted_rpc import DROP, delay

from .rpc_test_support import LogCapture, sleep, wait_for


class ScriptedFailPoints:
    """Answers ``before_send`` from a table keyed by (kind, method); records every question."""

    def __init__(self, actions: dict[tuple[str, str], object]) -> None:
        self.actions = actions
        self.asked: list[tuple[str, str, str]] = []

    def before_send(self, kind: str, address: str, method: str):
        self.asked.append((kind, address, method))
        return self.actions.get((kind, method))


async def expect_error(d, code):
    with pytest.raises(PegasusError) as info:
        await d
    assert info.value.code == code
    return info.value


@pytest_twisted.async_fixture
async def counting_server(make_server):
    def start(**options):
        server, port = make_server(**options)
        calls = []
        server.register("count", lambda body, ctx: calls.append(body) or len(calls))
        return server, f"127.0.0.1:{port}", calls

    return start


@pytest_twisted.ensureDeferred
async def test_client_drop_never_sends_and_the_call_times_out(counting_server, make_pool):
    _, address, calls = counting_server()
    points = ScriptedFailPoints({("request", "count"): DROP})
    pool = make_pool(fail_points=points)
    await expect_error(pool.call(address, "count", "lost", 0.05), ErrorCode.ERR_TIMEOUT)
    assert await pool.ping(address)  # other methods pass
    assert calls == []
    assert points.asked == [("request", address, "count"), ("request", address, "node.ping")]


@pytest_twisted.ensureDeferred
async def test_client_delay_sends_later(counting_server, make_pool):
    _, address, calls = counting_server()
    pool = make_pool(fail_points=ScriptedFailPoints({("request", "count"): delay(0.2)}))
    d = pool.call(address, "count", "late", 5.0)
    await sleep(0.05)
    assert calls == [] and not d.called
    assert await d == 1
    assert calls == ["late"]


@pytest_twisted.ensureDeferred
async def test_a_delayed_request_whose_deadline_passes_is_never_sent(counting_server, make_pool):
    _, address, calls = counting_server()
    pool = make_pool(fail_points=ScriptedFailPoints({("request", "count"): delay(0.2)}))
    await expect_error(pool.call(address, "count", "too late", 0.05), ErrorCode.ERR_TIMEOUT)
    await sleep(0.25)
    assert calls == []


@pytest_twisted.ensureDeferred
async def test_server_reply_drop_and_delay(counting_server, pool):
    points = ScriptedFailPoints({("reply", "count"): DROP, ("reply", "node.ping"): delay(0.1)})
    _, address, calls = counting_server(fail_points=points)
    await expect_error(pool.call(address, "count", "ran", 0.1), ErrorCode.ERR_TIMEOUT)
    assert calls == ["ran"]  # the handler ran; only its reply was lost
    d = pool.ping(address, timeout=5.0)
    await sleep(0.03)
    assert not d.called
    assert (await d)["role"] == "test"
    kinds = {(kind, method) for kind, _, method in points.asked}
    assert kinds == {("reply", "count"), ("reply", "node.ping")}
    assert all(address_.startswith("127.0.0.1:") for _, address_, _ in points.asked)


@pytest_twisted.ensureDeferred
async def test_an_unknown_action_is_reported(counting_server, make_pool):
    _, address, _ = counting_server()
    pool = make_pool(fail_points=ScriptedFailPoints({("request", "count"): "explode"}))
    error = await expect_error(pool.call(address, "count", None, 1.0), ErrorCode.ERR_UNKNOWN)
    assert "explode" in error.message


@pytest_twisted.ensureDeferred
async def test_pool_close_fails_held_requests(counting_server, make_pool):
    _, address, _ = counting_server()
    pool = make_pool(fail_points=ScriptedFailPoints({("request", "count"): DROP}))
    d = pool.call(address, "count", None, None)
    await pool.close()
    await expect_error(d, ErrorCode.ERR_NETWORK_FAILURE)


@pytest_twisted.ensureDeferred
async def test_send_to_drop_stops_notifies_until_cleared(counting_server, make_pool):
    _, address, calls = counting_server()
    registry = FailPointRegistry(f"send_to:{address}=drop")
    pool = make_pool(fail_points=registry)
    for i in range(5):
        pool.notify(address, "count", f"lost {i}")
    await expect_error(pool.call(address, "count", "lost too", 0.05), ErrorCode.ERR_TIMEOUT)
    registry.clear()
    pool.notify(address, "count", "delivered")
    assert await pool.call(address, "count", "call", 5.0) == 2
    assert calls == ["delivered", "call"]


@pytest_twisted.ensureDeferred
async def test_client_delay_sends_a_notify_later(counting_server, make_pool):
    _, address, calls = counting_server()
    pool = make_pool(fail_points=ScriptedFailPoints({("request", "count"): delay(0.2)}))
    pool.notify(address, "count", "late")
    await sleep(0.05)
    assert calls == []
    await wait_for(lambda: calls == ["late"])


@pytest_twisted.ensureDeferred
async def test_client_fail_point_error_drops_a_notify_with_a_log(counting_server, make_pool):
    _, address, calls = counting_server()
    pool = make_pool(fail_points=ScriptedFailPoints({("request", "count"): "explode"}))
    with LogCapture() as log:
        pool.notify(address, "count", None)
    assert any("explode" in str(e.get("message", "")) for e in log.events)
    assert await pool.ping(address)
    assert calls == []


@pytest_twisted.ensureDeferred
async def test_server_handler_fail_points_drop_delay_and_error_notifies(counting_server, pool):
    points = ScriptedFailPoints({("notify", "count"): DROP, ("notify", "slow"): delay(0.2),
                                 ("notify", "bad"): "explode"})
    server, address, calls = counting_server(fail_points=points)
    slow, bad = [], []
    server.register("slow", lambda body, ctx: slow.append(body))
    server.register("bad", lambda body, ctx: bad.append(body))
    with LogCapture() as log:
        pool.notify(address, "count", "dropped")
        pool.notify(address, "slow", "delayed")
        pool.notify(address, "bad", "dropped with a log")
        assert await pool.ping(address, timeout=5.0)
    assert calls == [] and slow == [] and bad == []
    assert any("explode" in str(e.get("error", "")) for e in log.events)
    await wait_for(lambda: slow == ["delayed"])
    assert {(kind, method) for kind, _, method in points.asked} >= {("notify", "count"), ("notify", "slow")}
