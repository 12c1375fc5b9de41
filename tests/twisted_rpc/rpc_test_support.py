"""Helpers for the RPC tests: a raw frame client, HTTP GET, log capture, sleep."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.web.client import Agent

from pegasus_node.twisted_rpc import FrameDecoder, parse_reply


def sleep(seconds: float) -> Deferred:
    return deferLater(reactor, seconds)


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Poll ``predicate()`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await sleep(0.005)


class RawConnection(Protocol):
    """Writes arbitrary bytes; collects reply frames and notices when the server closes."""

    def __init__(self, frames: bool = True) -> None:
        self.data = b""
        self._frames = frames
        self._decoder = FrameDecoder()
        self._replies: list = []
        self._waiting: list[Deferred] = []
        self.closed: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if not self._frames:
            return
        for obj in self._decoder.feed(data):
            reply = parse_reply(obj)
            if self._waiting:
                self._waiting.pop(0).callback(reply)
            else:
                self._replies.append(reply)

    def next_reply(self) -> Deferred:
        if self._replies:
            d: Deferred = Deferred()
            d.callback(self._replies.pop(0))
            return d
        d = Deferred()
        self._waiting.append(d)
        return d

    def connectionLost(self, reason: Any = None) -> None:
        for d in self._waiting:
            d.errback(ConnectionError("closed before a reply"))
        self._waiting = []
        self.closed.callback(None)


async def connect_raw(port: int, frames: bool = True) -> RawConnection:
    """A raw connection; with ``frames`` it decodes what the server sends as reply frames."""
    return await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), RawConnection(frames))


class _BodyCollector(Protocol):
    def __init__(self, done: Deferred) -> None:
        self._chunks: list[bytes] = []
        self._done = done

    def dataReceived(self, data: bytes) -> None:
        self._chunks.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self._done.callback(b"".join(self._chunks))


async def http_get(port: int, path: str, method: bytes = b"GET") -> tuple[int, dict[bytes, list[bytes]], bytes]:
    response = await Agent(reactor).request(method, f"http://127.0.0.1:{port}{path}".encode())
    done: Deferred = Deferred()
    response.deliverBody(_BodyCollector(done))
    body = await done
    headers = {k.lower(): v for k, v in response.headers.getAllRawHeaders()}
    return response.code, headers, body


class LogCapture:
    """Collects twisted.logger events while in a ``with`` block."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __enter__(self) -> LogCapture:
        globalLogPublisher.addObserver(self.events.append)
        return self

    def __exit__(self, *exc: Any) -> None:
        globalLogPublisher.removeObserver(self.events.append)

    def failures(self) -> list:
        return [e["log_failure"] for e in self.events if "log_failure" in e]
