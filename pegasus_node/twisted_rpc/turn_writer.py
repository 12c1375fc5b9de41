"""A connection's outgoing frames, written together once per reactor turn and sent at once when possible.

Twisted buffers each ``transport.write`` and registers the socket with the reactor; the bytes leave when the
reactor next reports the socket writable, and the socket is then unregistered. Per write that is several
Python calls, and per turn two ``epoll_ctl`` calls and one more pass through the reactor. A replica server
writes to each peer a few frames per turn (one batch of replication messages, replies to its clients), so that
bookkeeping cost more than the sends themselves.

A ``TurnWriter`` collects the frames written during a turn and, when the turn ends, sends them with one
``send`` straight on the socket when Twisted holds no earlier bytes for it. Whatever the kernel does not
take, and everything written while Twisted still holds bytes, goes through ``transport.write``, so the byte
order on the connection is kept and Twisted still handles back-pressure and errors.
"""

from __future__ import annotations

from typing import Any

from pegasus_node.base.turn import call_soon


def _transport_idle(transport: Any) -> bool:
    """Twisted holds no unsent bytes for this TCP transport and it is open for writing.

    ``dataBuffer`` and ``_tempDataBuffer`` are Twisted's FileDescriptor buffers (the second is private); any
    transport without them (not TCP) counts as busy, so it is always written through ``transport.write``.
    """
    return (getattr(transport, "connected", False) and not getattr(transport, "disconnecting", True)
            and getattr(transport, "dataBuffer", True) == b"" and getattr(transport, "_tempDataBuffer", True) == [])


def buffered_bytes(transport: Any) -> int:
    """Bytes Twisted holds for this transport, not yet taken by the kernel (0 for a transport without buffers)."""
    data = getattr(transport, "dataBuffer", b"")
    return len(data) - getattr(transport, "offset", 0) + getattr(transport, "_tempDataLen", 0)


def send_now(transport: Any, data: bytes) -> None:
    """Write ``data`` on ``transport``: straight on its socket when nothing is queued before it."""
    if _transport_idle(transport):
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = 0  # a broken connection: transport.write queues it and the reactor reports the loss
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


CLOSE_GRACE_SECONDS = 2.0


class TurnWriter:
    __slots__ = ("_reactor", "_transport", "_frames", "_abort_timer")

    def __init__(self, reactor: Any, transport: Any) -> None:
        self._reactor = reactor
        self._transport = transport
        self._frames: list[bytes] | None = None
        self._abort_timer = None

    def write(self, frame: bytes) -> None:
        frames = self._frames
        if frames is None:
            self._frames = [frame]
            call_soon(self._reactor, self.flush)
        else:
            frames.append(frame)

    def buffered_bytes(self) -> int:
        """What this connection has written and the peer's kernel has not taken yet."""
        pending = sum(len(frame) for frame in self._frames) if self._frames else 0
        return pending + buffered_bytes(self._transport)

    def write_now(self, frame: bytes) -> None:
        """Send ``frame`` now, after what this turn wrote before it: for a caller that already batched its turn."""
        if self._frames is None:
            send_now(self._transport, frame)
        else:
            self._frames.append(frame)
            self.flush()

    def flush(self) -> None:
        """Send what this turn wrote; call it before closing the connection, so that nothing is left behind."""
        frames, self._frames = self._frames, None
        if frames:
            send_now(self._transport, frames[0] if len(frames) == 1 else b"".join(frames))

    def close(self) -> None:
        """Close the connection once what was written has left; drop it after CLOSE_GRACE_SECONDS if the peer
        does not take it (loseConnection alone waits for a peer that stopped reading forever)."""
        self.flush()
        self._transport.loseConnection()
        if self._abort_timer is None:
            self._abort_timer = self._reactor.callLater(CLOSE_GRACE_SECONDS, self._abort)

    def _abort(self) -> None:
        self._abort_timer = None
        self._transport.abortConnection()

    def connection_lost(self) -> None:
        """Call from the protocol's connectionLost."""
        self._frames = None
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None
