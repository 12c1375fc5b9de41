"""pegasus-bench: argument parsing, the HDR summary, the shared loop runner, and real runs."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.utils import getProcessOutputAndValue

from pegasus_node.bench.cli import UsageError, _error_line, main, parse_args, run_ceiling, run_kv
from pegasus_node.bench.compare import format_compare, run_compare
from pegasus_node.bench.histogram import LatencyRecorder
from pegasus_node.bench.report import format_text
from pegasus_node.bench.runner import NOT_FOUND, BenchFailure, BenchStalled, run_loops
from pegasus_node.bench.workloads import ECHO_METHOD, KeySpace, echo_handler
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc import delay

REPO = Path(__file__).resolve().parents[2]
DOC_KEYS = {
    "tool", "schema_version", "mode", "workload", "target", "table", "ops", "done", "concurrency", "value_size",
    "hash_keys", "preloaded", "follower_read", "backup_request_delay_ms", "backup_requests", "elapsed_seconds",
    "ops_per_second", "ok", "not_found", "error_count", "errors", "error_examples", "latency_us",
}
LATENCY_KEYS = {"count", "min", "mean", "p50", "p99", "p999", "p9999", "max"}


def test_parse_kv_and_ceiling_arguments() -> None:
    mode, args = parse_args(["--meta", "127.0.0.1:34601", "--table", "t", "--workload", "get", "--ops", "50"])
    assert mode == "kv"
    assert (args.workload, args.ops, args.concurrency, args.value_size, args.hash_keys) == ("get", 50, 10, 100, 1000)
    assert not args.json and not args.no_preload
    mode, args = parse_args(["ceiling", "--concurrency", "3", "--ops", "9", "--value-size", "0", "--json"])
    assert mode == "ceiling" and (args.concurrency, args.ops, args.value_size, args.json) == (3, 9, 0, True)
    assert args.target is None


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--table", "t"], "--meta"),
        (["--meta", "h:1"], "--table"),
        (["--meta", "h:1", "--table", "t", "--workload", "delete"], "invalid choice"),
        (["--meta", "h:1", "--table", "t", "--ops", "0"], "must be >= 1"),
        (["--meta", "h:1", "--table", "t", "--concurrency", "x"], "not an integer"),
        (["--meta", "h:1", "--table", "t", "--value-size", str(2 << 20)], "value limit"),
        (["--meta", "nohost", "--table", "t"], "--meta"),
        (["--meta", "h:1", "--table", "t", "--read-ratio", "2"], "between 0 and 1"),
        (["ceiling", "--target", "nowhere"], "--target"),
        (["ceiling", "--meta", "h:1"], "unrecognized"),
    ],
)
def test_usage_errors(argv: list[str], words: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(UsageError, match=words):
        parse_args(argv)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pegasus-bench: error:") and words in err


def test_hdr_summary() -> None:
    recorder = LatencyRecorder()
    assert recorder.summary() == {
        "count": 0, "min": 0, "mean": 0.0, "p50": 0, "p99": 0, "p999": 0, "p9999": 0, "max": 0
    }
    for micros in range(1, 10_001):
        recorder.record_seconds(micros / 1_000_000)
    summary = recorder.summary()
    assert set(summary) == LATENCY_KEYS and summary["count"] == 10_000 and summary["min"] == 1
    for name, exact in [("p50", 5000), ("p99", 9900), ("p999", 9990), ("p9999", 9999), ("max", 10_000)]:
        assert abs(summary[name] - exact) <= exact * 0.001 + 1, (name, summary[name])
    assert abs(summary["mean"] - 5000.5) < 10
    recorder.record_seconds(10_000.0)  # beyond the histogram's range: clamped, not lost
    assert recorder.count == 10_001 and recorder.summary()["max"] >= 3_599_000_000


@pytest_twisted.ensureDeferred
async def test_loop_runner_counts_every_outcome() -> None:
    seen: list[int] = []
    in_flight = 0
    most_in_flight = 0

    def op(i: int) -> Deferred:
        nonlocal in_flight, most_in_flight
        seen.append(i)
        if i % 10 == 0:
            return fail(PegasusError(ErrorCode.ERR_BUSY, "busy"))
        if i % 10 == 1:
            return succeed(NOT_FOUND)
        if i % 10 == 2:
            return fail(BenchFailure("WRONG_VALUE", "bad bytes"))
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        d = Deferred()

        def done() -> None:
            nonlocal in_flight
            in_flight -= 1
            d.callback(None)

        reactor.callLater(0, done)
        return d

    result = await run_loops(op, 200, 7, clock=reactor)
    assert sorted(seen) == list(range(200))
    progress = result.progress
    assert (progress.done, progress.ok, progress.not_found) == (200, 140, 20)
    assert dict(progress.errors) == {"ERR_BUSY": 20, "WRONG_VALUE": 20}
    assert result.first_errors == {"ERR_BUSY": "ERR_BUSY: busy", "WRONG_VALUE": "bad bytes"}
    assert result.latency.count == 160 and most_in_flight == 7


@pytest_twisted.ensureDeferred
async def test_a_run_with_no_success_for_a_while_stops_with_a_clear_error() -> None:
    def op(i: int) -> Deferred:
        return task.deferLater(reactor, 0.01, _raise, PegasusError(ErrorCode.ERR_NETWORK_FAILURE, "refused"))

    started = time.monotonic()
    with pytest.raises(BenchStalled) as raised:
        await run_loops(op, 100_000, 4, clock=reactor, give_up_after=0.2)
    assert time.monotonic() - started < 5
    message = str(raised.value)
    assert "no operation succeeded for 0.2 s" in message and "ERR_NETWORK_FAILURE: refused" in message
    assert "Is the cluster up?" in message and _error_line(raised.value) == message


@pytest_twisted.ensureDeferred
async def test_a_run_that_still_succeeds_now_and_then_goes_on() -> None:
    def op(i: int) -> Deferred:
        if i % 20:
            return task.deferLater(reactor, 0.002, _raise, PegasusError(ErrorCode.ERR_BUSY, "busy"))
        return task.deferLater(reactor, 0.002, lambda: None)

    result = await run_loops(op, 400, 2, clock=reactor, give_up_after=0.5)
    assert (result.progress.done, result.progress.ok) == (400, 20)


def _raise(error: Exception) -> None:
    raise error


def test_key_space_matches_set_and_get_runs() -> None:
    keys = KeySpace(3)
    assert keys.key(0) == (b"bench:00000000", b"s0000000000")
    assert keys.key(7) == (b"bench:00000001", b"s0000000002")
    assert len({keys.key(i) for i in range(100)}) == 100


def _kv_args(cluster, *extra: str):
    return parse_args(["--meta", cluster.meta_list, "--table", "t", "--ops", "60", "--concurrency", "4",
                       "--value-size", "32", "--hash-keys", "5", *extra])[1]


@pytest_twisted.ensureDeferred
async def test_kv_workloads_against_a_cluster(cluster) -> None:
    doc = await run_kv(reactor, _kv_args(cluster, "--workload", "set"))
    assert set(doc) == DOC_KEYS and set(doc["latency_us"]) == LATENCY_KEYS
    assert (doc["mode"], doc["workload"], doc["ok"], doc["error_count"], doc["preloaded"]) == ("kv", "set", 60, 0, 0)
    assert sum(len(store) for store in cluster.apps["t"].stores) == 60
    doc = await run_kv(reactor, _kv_args(cluster, "--workload", "get", "--no-preload"))
    assert (doc["ok"], doc["not_found"], doc["error_count"]) == (60, 0, 0)
    doc = await run_kv(reactor, _kv_args(cluster, "--workload", "scan", "--scan-batch", "4", "--no-preload"))
    assert (doc["ok"], doc["error_count"]) == (60, 0)
    doc = await run_kv(reactor, _kv_args(cluster, "--workload", "mixed", "--read-ratio", "0.5"))
    assert doc["ok"] + doc["not_found"] == 60 and doc["error_count"] == 0
    text = format_text(doc)
    assert "ops/s" in text and "p9999" in text


@pytest_twisted.ensureDeferred
async def test_get_workload_preloads_and_reports_wrong_values(cluster) -> None:
    doc = await run_kv(reactor, _kv_args(cluster, "--workload", "get"))
    assert (doc["preloaded"], doc["ok"], doc["error_count"]) == (60, 60, 0)
    doc = await run_kv(reactor, _kv_args(cluster, "--workload", "get", "--no-preload", "--value-size", "8"))
    assert doc["errors"] == {"WRONG_VALUE": 60} and doc["ok"] == 0


@pytest_twisted.ensureDeferred
async def test_get_workload_with_follower_reads_reads_from_the_secondaries(cluster) -> None:
    doc = await run_kv(reactor, _kv_args(cluster, "--workload", "get", "--follower-read"))
    assert (doc["follower_read"], doc["ok"], doc["error_count"]) == (True, 60, 0)
    assert sum(r.follower_reads for r in cluster.replicas) == 60
    assert "follower reads" in format_text(doc)


@pytest_twisted.ensureDeferred
async def test_get_workload_with_backup_requests_counts_them(cluster) -> None:
    doc = await run_kv(reactor, _kv_args(cluster, "--workload", "get"))
    assert (doc["backup_request_delay_ms"], doc["backup_requests"]) == (0, 0)
    for replica in cluster.replicas:  # every read is slower than the backup delay: each sends a backup request
        replica.faults.actions["rrdb.get"] = delay(0.03)
    doc = await run_kv(reactor, _kv_args(cluster, "--workload", "get", "--backup-request-delay-ms", "5"))
    assert (doc["ok"], doc["error_count"], doc["backup_request_delay_ms"], doc["backup_requests"]) == (60, 0, 5, 60)
    assert "60 reads also sent to a secondary" in format_text(doc)


@pytest_twisted.ensureDeferred
async def test_compare_reports_rounds_ratios_and_the_servers(cluster) -> None:
    for replica in cluster.replicas:  # the real replica servers serve echo (processes.py)
        replica.server.register(ECHO_METHOD, echo_handler)
    _, args = parse_args(["compare", "--meta", cluster.meta_list, "--table", "t", "--ops", "40",
                          "--concurrency", "4", "--value-size", "16", "--rounds", "2"])
    doc = await run_compare(reactor, args)
    primaries = {p.primary for p in cluster.apps["t"].partitions}
    assert (doc["mode"], doc["table"], doc["error_count"], len(doc["rounds"])) == ("compare", "t", 0, 2)
    assert sorted(doc["servers"]) == sorted(primaries)
    for r in doc["rounds"]:
        assert r["set_ratio"] == r["set_ops_per_second"] / r["ceiling_ops_per_second"] > 0
    header = format_compare(doc).splitlines()[0]
    assert f"primaries on {len(primaries)} server" in header and "4 partitions, 3 replicas" in header


@pytest_twisted.ensureDeferred
async def test_ceiling_in_process() -> None:
    _, args = parse_args(["ceiling", "--ops", "300", "--concurrency", "5", "--value-size", "64"])
    doc = await run_ceiling(reactor, args)
    assert set(doc) == DOC_KEYS
    assert (doc["mode"], doc["workload"], doc["ok"], doc["error_count"], doc["table"]) == ("ceiling", "echo", 300, 0, None)
    assert doc["latency_us"]["count"] == 300 and doc["ops_per_second"] > 0


async def _bench(*argv: str) -> tuple[int, dict | None, str]:
    out, err, code = await getProcessOutputAndValue(
        sys.executable, ["-m", "pegasus_node.bench.cli", *argv], env=dict(os.environ), path=str(REPO)
    )
    text = out.decode()
    return code, (json.loads(text) if text.startswith("{") else None), err.decode()


@pytest_twisted.ensureDeferred
async def test_cli_runs_and_exit_codes(cluster) -> None:
    code, doc, err = await _bench("--meta", cluster.meta_list, "--table", "t", "--workload", "set", "--ops", "100",
                                  "--concurrency", "4", "--json")
    assert code == 0 and doc["ok"] == 100 and err == ""
    code, doc, err = await _bench("ceiling", "--ops", "100", "--concurrency", "2", "--json")
    assert code == 0 and doc["ok"] == 100
    cluster.clear_primary("t", 0)
    code, doc, err = await _bench("--meta", cluster.meta_list, "--table", "t", "--workload", "set", "--ops", "40",
                                  "--concurrency", "4", "--timeout", "0.2", "--json")
    assert code == 1 and doc["errors"].get("ERR_TIMEOUT", 0) > 0 and doc["ok"] + doc["error_count"] == 40
    code, doc, err = await _bench("--meta", cluster.meta_list, "--table", "missing", "--ops", "1")
    assert code == 1 and doc is None
    assert err.strip().count("\n") == 0 and "table 'missing' does not exist" in err and "Traceback" not in err
