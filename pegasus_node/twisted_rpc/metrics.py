"""Prometheus metrics of the RPC server and client, registered once per process in the default registry.

Label values stay bounded: ``method`` is a registered method name (on a client, a method this process calls) or
``"unknown"``, ``code`` an ErrorCode name, ``outcome`` one of the NOTIFY_* names below.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from pegasus_node.errors import ErrorCode

UNKNOWN_METHOD = "unknown"
CLIENT_ROLE = "client"

# What became of a one-way notify. A client pool counts SENT or DROPPED (never written: the peer was
# unreachable, its queue was full, a fail point, an unencodable body); a server counts the rest.
NOTIFY_SENT = "sent"
NOTIFY_DROPPED = "dropped"
NOTIFY_HANDLED = "handled"
NOTIFY_FAILED = "failed"  # the handler raised or its Deferred failed
NOTIFY_UNKNOWN_METHOD = "unknown_method"
NOTIFY_DROPPED_BY_FAIL_POINT = "dropped_by_fail_point"
NOTIFY_DROPPED_BUSY = "dropped_busy"  # the connection already had too many handlers in flight

REQUESTS = Counter(
    "pegasus_rpc_requests",
    "RPC requests answered, by role, method and error code",
    ["role", "method", "code"],
)
LATENCY = Histogram(
    "pegasus_rpc_latency_seconds",
    "Time from dispatching an RPC request to sending its reply",
    ["role", "method"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

NOTIFIES = Counter(
    "pegasus_rpc_notifies",
    "One-way notifies by role (a server's, or client), method and outcome",
    ["role", "method", "outcome"],
)


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return ErrorCode.ERR_UNKNOWN.name


class RpcMetrics:
    """One role's metric children, cached: ``labels()`` takes a lock and builds tuples on every call."""

    __slots__ = ("role", "_counters", "_histograms", "_notifies")

    def __init__(self, role: str) -> None:
        self.role = role
        self._counters: dict[tuple[str, int], object] = {}
        self._histograms: dict[str, object] = {}
        self._notifies: dict[tuple[str, str], object] = {}

    def notified(self, method: str, outcome: str) -> None:
        key = (method, outcome)
        counter = self._notifies.get(key)
        if counter is None:
            counter = self._notifies[key] = NOTIFIES.labels(self.role, method, outcome)
        counter.inc()

    def record(self, method: str, code: int, seconds: float | None) -> None:
        key = (method, code)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = REQUESTS.labels(self.role, method, _code_name(code))
        counter.inc()
        if seconds is not None:
            histogram = self._histograms.get(method)
            if histogram is None:
                histogram = self._histograms[method] = LATENCY.labels(self.role, method)
            histogram.observe(seconds)
