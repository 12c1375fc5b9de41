"""Prometheus metrics of the RPC server and client, registered once per process in the default registry.

Label values stay bounded: ``method`` is a registered method name (on a client, a method this process calls) or
``"unknown"``, ``code`` an ErrorCode name, ``outcome`` one of the NOTIFY_* names below.

Every request and notify is counted, so the counting is on every write's path. prometheus_client's children
take a lock per ``inc``/``observe``; that was several percent of a replica server's CPU. Only the reactor
thread counts, so the tallies here are plain ints, per role and shared by every server or pool of that role,
and a collector turns them into the same metric families when /metrics is scraped.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from prometheus_client.core import REGISTRY, CounterMetricFamily, HistogramMetricFamily, Metric

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

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0)


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return ErrorCode.ERR_UNKNOWN.name


class _Latency:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0


class _RoleTallies:
    """Since the process started, for one role: requests by (method, code), latency by method, notifies by
    (method, outcome)."""

    __slots__ = ("requests", "latency", "notifies")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, _Latency] = {}
        self.notifies: dict[tuple[str, str], int] = {}


_TALLIES: dict[str, _RoleTallies] = {}


class RpcMetrics:
    """The counting done by one server or client pool; roles with the same name add up, as labels would."""

    __slots__ = ("role", "_tallies")

    def __init__(self, role: str) -> None:
        self.role = role
        self._tallies = _TALLIES.setdefault(role, _RoleTallies())

    def notified(self, method: str, outcome: str) -> None:
        notifies = self._tallies.notifies
        key = (method, outcome)
        notifies[key] = notifies.get(key, 0) + 1

    def record(self, method: str, code: int, seconds: float | None) -> None:
        tallies = self._tallies
        key = (method, code)
        tallies.requests[key] = tallies.requests.get(key, 0) + 1
        if seconds is not None:
            latency = tallies.latency.get(method)
            if latency is None:
                latency = tallies.latency[method] = _Latency()
            latency.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            latency.total += seconds


class _RpcCollector:
    """Builds the metric families from the tallies at scrape time."""

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("pegasus_rpc_requests", "RPC requests answered, by role, method and error code",
                                       labels=["role", "method", "code"])
        latency = HistogramMetricFamily("pegasus_rpc_latency_seconds",
                                        "Time from dispatching an RPC request to sending its reply",
                                        labels=["role", "method"])
        notifies = CounterMetricFamily("pegasus_rpc_notifies",
                                       "One-way notifies by role (a server's, or client), method and outcome",
                                       labels=["role", "method", "outcome"])
        for role, tallies in list(_TALLIES.items()):
            for (method, code), count in list(tallies.requests.items()):
                requests.add_metric([role, method, _code_name(code)], count)
            for method, histogram in list(tallies.latency.items()):
                buckets, running = [], 0
                for bound, count in zip(LATENCY_BUCKETS + (float("inf"),), histogram.counts):
                    running += count
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
                latency.add_metric([role, method], buckets, sum_value=histogram.total)
            for (method, outcome), count in list(tallies.notifies.items()):
                notifies.add_metric([role, method, outcome], count)
        yield requests
        yield latency
        yield notifies


REGISTRY.register(_RpcCollector())
