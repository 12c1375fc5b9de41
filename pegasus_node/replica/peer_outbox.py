"""Replication messages to peers, coalesced: one one-way frame per peer per reactor turn.

The replication core emits many small messages per turn (a Prepare to every secondary for each client
write, an ack back for each). Sent one RPC each, the frames, socket writes and Deferreds of those messages were
the largest CPU cost of a replica server. The outbox collects what a turn sends and, once the turn is over,
sends each peer a single ``replication.messages`` notify holding them in the order they were sent. A batch
too big for one frame (large values, a long learn response) is split in halves until the parts fit.
"""

from __future__ import annotations

from typing import Any

from pegasus_node.base.turn import call_soon
from pegasus_node.errors import ErrorCode
from pegasus_node.twisted_rpc import RpcClientPool

MESSAGES_METHOD = "replication.messages"


class PeerOutbox:
    def __init__(self, pool: RpcClientPool, reactor: Any) -> None:
        self._pool = pool
        self._reactor = reactor
        self._batches: dict[str, list] = {}  # peer address -> wire messages, in send order
        self._flush_scheduled = False

    def send(self, to: str, wire_message: dict) -> None:
        """Queue ``wire_message`` (a message's ``to_wire()``) for ``to``; it leaves when this reactor turn ends."""
        batch = self._batches.get(to)
        if batch is None:
            self._batches[to] = [wire_message]
            if not self._flush_scheduled:
                self._flush_scheduled = True
                call_soon(self._reactor, self.flush)
        else:
            batch.append(wire_message)

    def flush(self) -> None:
        """Send every queued message now: one notify per peer."""
        self._flush_scheduled = False
        batches, self._batches = self._batches, {}
        for to, messages in batches.items():
            self._send(to, messages)

    def _send(self, to: str, messages: list) -> None:
        code = self._pool.notify(to, MESSAGES_METHOD, {"messages": messages})
        if code == ErrorCode.ERR_VALUE_TOO_LARGE and len(messages) > 1:
            half = len(messages) // 2
            self._send(to, messages[:half])
            self._send(to, messages[half:])
