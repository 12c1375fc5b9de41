"""How a replica server routes replication messages from peers to its replicas: one per RPC
(``replication.message``) or in batches (the ``replication.messages`` notify of peer_outbox.py)."""

from __future__ import annotations

import pytest
import pytest_twisted

from pegasus_node.config import NodeConfig
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.replica.peer_outbox import MESSAGES_METHOD
from pegasus_node.replica.server import ReplicaServer
from pegasus_node.replication.messages import PrepareAck
from pegasus_node.twisted_rpc import RpcClientPool, RpcServer
from tests.twisted_rpc.rpc_test_support import LogCapture, sleep, wait_for

SENDER = "127.0.0.1:1"


class RecordingReplica:
    """Stands in for a PartitionReplica: records the messages routed to it."""

    def __init__(self) -> None:
        self.messages: list = []
        self.closed = False

    def on_message(self, message) -> None:
        self.messages.append(message)

    def close(self) -> None:
        self.closed = True


def ack(gpid: tuple[int, int], acked: int) -> PrepareAck:
    return PrepareAck(gpid, 3, SENDER, acked)


@pytest_twisted.async_yield_fixture
async def routed(tmp_path):
    """A ReplicaServer serving on 127.0.0.1 with recording replicas for partitions 1.0 and 1.1, and a pool."""
    rpc = RpcServer("replica")
    node = ReplicaServer(NodeConfig(data_dir=str(tmp_path)), address="127.0.0.1:0")
    node.register(rpc)
    replicas = {(1, 0): RecordingReplica(), (1, 1): RecordingReplica()}
    node.replicas.update(replicas)
    address = f"127.0.0.1:{rpc.listen(0).getHost().port}"
    pool = RpcClientPool()
    yield node, address, pool, replicas
    await pool.close()
    await node.stop()
    await rpc.stop()


@pytest_twisted.ensureDeferred
async def test_a_batch_with_bad_elements_still_delivers_the_others(routed):
    _, address, pool, replicas = routed
    batch = [ack((1, 0), 1), {"type": "nope"}, ack((9, 9), 1), 42, {"type": "prepare_ack", "gpid": [1, 0]},
             ack((1, 1), 7), ack((1, 0), 2)]
    wire = [m.to_wire() if isinstance(m, PrepareAck) else m for m in batch]
    with LogCapture() as log:
        pool.notify(address, MESSAGES_METHOD, {"messages": wire})
        await wait_for(lambda: len(replicas[(1, 0)].messages) == 2 and replicas[(1, 1)].messages)
    assert replicas[(1, 0)].messages == [ack((1, 0), 1), ack((1, 0), 2)]
    assert replicas[(1, 1)].messages == [ack((1, 1), 7)]
    skipped = [e for e in log.events if "skipped" in e.get("log_format", "")]
    # One line per kind of error: malformed (the first of three), and not hosted.
    assert {e["error"].split(":")[0] for e in skipped} == {"malformed replication message",
                                                          "partition (9, 9) is not hosted here"}
    assert any("unknown replication message type" in e["error"] for e in skipped)


@pytest_twisted.ensureDeferred
async def test_a_batch_of_the_wrong_shape_is_dropped_and_the_connection_stays(routed):
    _, address, pool, replicas = routed
    with LogCapture() as log:
        pool.notify(address, MESSAGES_METHOD, {"messages": "not a list"})
        pool.notify(address, MESSAGES_METHOD, {"messages": [ack((1, 0), 5).to_wire()]})
        await wait_for(lambda: replicas[(1, 0)].messages)
    assert replicas[(1, 0)].messages == [ack((1, 0), 5)]
    assert any("'messages' must be list" in str(e.get("message", "")) for e in log.events)


@pytest_twisted.ensureDeferred
async def test_the_single_message_rpc_routes_the_same_way(routed):
    _, address, pool, replicas = routed
    assert await pool.call(address, "replication.message", {"message": ack((1, 1), 4).to_wire()}, 5.0) == {}
    assert replicas[(1, 1)].messages == [ack((1, 1), 4)]
    for message, code in (({"type": "nope"}, ErrorCode.ERR_INVALID_PARAMETERS),
                          (ack((9, 9), 1).to_wire(), ErrorCode.ERR_OBJECT_NOT_FOUND)):
        with pytest.raises(PegasusError) as info:
            await pool.call(address, "replication.message", {"message": message}, 5.0)
        assert info.value.code == code


@pytest_twisted.ensureDeferred
async def test_send_message_coalesces_a_turn_into_one_notify(routed):
    node, _, _, _ = routed
    peer = RpcServer("peer")
    batches = []
    peer.register(MESSAGES_METHOD, lambda body, ctx: batches.append(body["messages"]))
    peer_address = f"127.0.0.1:{peer.listen(0).getHost().port}"
    try:
        node.send_message(peer_address, ack((1, 0), 1))
        node.send_message(peer_address, ack((1, 1), 2))
        node.send_message(peer_address, ack((1, 0), 3))
        await wait_for(lambda: batches)
        await sleep(0.05)
        assert batches == [[ack((1, 0), 1).to_wire(), ack((1, 1), 2).to_wire(), ack((1, 0), 3).to_wire()]]
    finally:
        await peer.stop()
