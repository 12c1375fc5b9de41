"""PeerOutbox: the replication messages of one reactor turn leave as one notify per peer, in send order."""

import contextlib

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from pegasus_node.errors import ErrorCode
from pegasus_node.replica.peer_outbox import MESSAGES_METHOD, PeerOutbox
from pegasus_node.twisted_rpc import RpcClientPool, RpcServer
from tests.twisted_rpc.rpc_test_support import sleep, wait_for


class RecordingPool:
    """Records what the outbox hands to ``RpcClientPool.notify``."""

    def __init__(self) -> None:
        self.notifies: list[tuple[str, str, object]] = []

    def notify(self, address: str, method: str, body: object) -> ErrorCode:
        self.notifies.append((address, method, body))
        return ErrorCode.ERR_OK


def test_one_notify_per_peer_when_the_turn_ends():
    clock, pool = Clock(), RecordingPool()
    outbox = PeerOutbox(pool, clock)
    outbox.send("a:1", {"n": 1})
    outbox.send("b:2", {"n": 2})
    outbox.send("a:1", {"n": 3})
    assert pool.notifies == [] and len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert pool.notifies == [
        ("a:1", MESSAGES_METHOD, {"messages": [{"n": 1}, {"n": 3}]}),
        ("b:2", MESSAGES_METHOD, {"messages": [{"n": 2}]}),
    ]
    assert clock.getDelayedCalls() == []


def test_each_turn_is_its_own_batch():
    clock, pool = Clock(), RecordingPool()
    outbox = PeerOutbox(pool, clock)
    outbox.send("a:1", {"n": 1})
    clock.advance(0)
    outbox.send("a:1", {"n": 2})
    assert len(clock.getDelayedCalls()) == 1  # the next turn's flush is scheduled anew
    clock.advance(0)
    assert [body["messages"] for _, _, body in pool.notifies] == [[{"n": 1}], [{"n": 2}]]


@contextlib.asynccontextmanager
async def recording_peer(**pool_options):
    """A real peer that records each ``replication.messages`` frame, and a pool to reach it."""
    server = RpcServer("peer")
    frames: list[list] = []
    server.register(MESSAGES_METHOD, lambda body, ctx: frames.append(body["messages"]))
    address = f"127.0.0.1:{server.listen(0).getHost().port}"
    pool = RpcClientPool(**pool_options)
    try:
        yield PeerOutbox(pool, reactor), address, frames
    finally:
        await pool.close()
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_messages_to_one_peer_in_one_turn_arrive_in_one_frame():
    async with recording_peer() as (outbox, address, frames):
        for i in range(3):
            outbox.send(address, {"n": i})
        await wait_for(lambda: frames)
        await sleep(0.05)  # nothing else follows
        assert frames == [[{"n": 0}, {"n": 1}, {"n": 2}]]


@pytest_twisted.ensureDeferred
async def test_a_batch_too_big_for_one_frame_is_split_and_every_message_arrives():
    async with recording_peer(max_frame_bytes=10_000) as (outbox, address, frames):
        for i in range(10):
            outbox.send(address, {"n": i, "value": b"x" * 3_000})  # 30 KB in all: three frames at least
        await wait_for(lambda: sum(map(len, frames)) == 10)
        assert len(frames) >= 3
        assert [m["n"] for frame in frames for m in frame] == list(range(10))  # still in send order
