"""Prometheus metrics of the RPC server, registered once per process in the default registry.

Label values stay bounded: ``method`` is a registered method name or ``"unknown"``, ``code`` an ErrorCode name.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from pegasus_node.errors import ErrorCode

UNKNOWN_METHOD = "unknown"

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


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return ErrorCode.ERR_UNKNOWN.name


class RpcMetrics:
    """One role's metric children, cached: ``labels()`` takes a lock and builds tuples on every call."""

    __slots__ = ("role", "_counters", "_histograms")

    def __init__(self, role: str) -> None:
        self.role = role
        self._counters: dict[tuple[str, int], object] = {}
        self._histograms: dict[str, object] = {}

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
