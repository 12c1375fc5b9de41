"""RPC metrics: plain tallies on the hot path, the usual Prometheus families at scrape time."""

from prometheus_client import REGISTRY

from pegasus_node.errors import ErrorCode
from pegasus_node.twisted_rpc.metrics import RpcMetrics


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_requests_and_latency_add_up_per_role_across_servers() -> None:
    first, second = RpcMetrics("metrics-unit"), RpcMetrics("metrics-unit")
    first.record("echo", ErrorCode.ERR_OK, 0.0001)  # on a bucket bound: counted in that bucket (le)
    second.record("echo", ErrorCode.ERR_OK, 0.003)
    second.record("echo", ErrorCode.ERR_TIMEOUT, None)  # answered, no latency
    second.record("echo", 12345, 20.0)  # a code no ErrorCode has; beyond the last bound
    labels = {"role": "metrics-unit", "method": "echo"}
    assert sample("pegasus_rpc_requests_total", code="ERR_OK", **labels) == 2
    assert sample("pegasus_rpc_requests_total", code="ERR_TIMEOUT", **labels) == 1
    assert sample("pegasus_rpc_requests_total", code="ERR_UNKNOWN", **labels) == 1
    assert sample("pegasus_rpc_latency_seconds_bucket", le="0.0001", **labels) == 1
    assert sample("pegasus_rpc_latency_seconds_bucket", le="0.0025", **labels) == 1
    assert sample("pegasus_rpc_latency_seconds_bucket", le="0.005", **labels) == 2
    assert sample("pegasus_rpc_latency_seconds_bucket", le="10.0", **labels) == 2
    assert sample("pegasus_rpc_latency_seconds_bucket", le="+Inf", **labels) == 3
    assert sample("pegasus_rpc_latency_seconds_count", **labels) == 3
    assert abs(sample("pegasus_rpc_latency_seconds_sum", **labels) - 20.0031) < 1e-9


def test_notifies_are_counted_by_outcome() -> None:
    metrics = RpcMetrics("metrics-unit-notify")
    for outcome in ("sent", "sent", "dropped"):
        metrics.notified("replication.messages", outcome)
    labels = {"role": "metrics-unit-notify", "method": "replication.messages"}
    assert sample("pegasus_rpc_notifies_total", outcome="sent", **labels) == 2
    assert sample("pegasus_rpc_notifies_total", outcome="dropped", **labels) == 1
