"""The bench's output: one stable JSON document (``--json``) or a few lines for people.

JSON keys (schema_version 1; keys are only ever added):

- ``tool`` ("pegasus-bench"), ``schema_version`` (1), ``mode`` ("kv" or "ceiling"),
  ``workload`` ("set", "get", "mixed", "scan", or "echo" for ceiling);
- ``target``: the meta server list (kv) or the echo server's address (ceiling); ``table``: name or null;
- ``ops`` (requested), ``done`` (completed, ok or not), ``concurrency``, ``value_size`` (bytes),
  ``hash_keys`` (kv) or null, ``preloaded`` (records written before a get/scan run, untimed; 0 if none),
  ``follower_read`` (true: the reads went to secondaries as follower reads), ``backup_request_delay_ms`` (0: no
  backup requests) and ``backup_requests`` (how many reads were also sent to a secondary);
- ``elapsed_seconds``, ``ops_per_second`` (completed operations over the timed run);
- ``ok``, ``not_found`` (reads of absent keys: successful operations), ``error_count``,
  ``errors`` ({error code name or failure label: count}), ``error_examples`` ({same key: one message});
- ``latency_us``: {``count``, ``min``, ``mean``, ``p50``, ``p99``, ``p999``, ``p9999``, ``max``} over the
  successful operations, in microseconds (HDR histogram, 3 significant digits).
"""

from __future__ import annotations

import json
from typing import Any

from pegasus_node.bench.runner import LoopResult

SCHEMA_VERSION = 1


def report_document(
    *,
    mode: str,
    workload: str,
    target: str,
    table: str | None,
    ops: int,
    value_size: int,
    hash_keys: int | None,
    result: LoopResult,
    preloaded: int = 0,
    follower_read: bool = False,
    backup_request_delay_ms: int = 0,
    backup_requests: int = 0,
) -> dict[str, Any]:
    progress = result.progress
    return {
        "tool": "pegasus-bench",
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "workload": workload,
        "target": target,
        "table": table,
        "ops": ops,
        "done": progress.done,
        "concurrency": result.concurrency,
        "value_size": value_size,
        "hash_keys": hash_keys,
        "preloaded": preloaded,
        "follower_read": follower_read,
        "backup_request_delay_ms": backup_request_delay_ms,
        "backup_requests": backup_requests,
        "elapsed_seconds": round(progress.elapsed_seconds, 6),
        "ops_per_second": round(progress.ops_per_second, 1),
        "ok": progress.ok,
        "not_found": progress.not_found,
        "error_count": progress.error_count,
        "errors": dict(sorted(progress.errors.items())),
        "error_examples": dict(sorted(result.first_errors.items())),
        "latency_us": result.latency.summary(),
    }


def format_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True)


def format_text(doc: dict[str, Any]) -> str:
    where = f"table {doc['table']} @ {doc['target']}" if doc["table"] else doc["target"]
    lines = [
        f"pegasus-bench {doc['mode']} {doc['workload']}: {doc['done']}/{doc['ops']} ops, "
        f"concurrency {doc['concurrency']}, value {doc['value_size']} B, {where}",
    ]
    if doc["preloaded"]:
        lines.append(f"  preloaded   {doc['preloaded']} records (not timed)")
    if doc.get("follower_read"):
        lines.append("  reads       follower reads, from the secondaries")
    if doc.get("backup_request_delay_ms"):
        lines.append(f"  backup      after {doc['backup_request_delay_ms']} ms: {doc['backup_requests']} reads also "
                     "sent to a secondary")
    lines.append(f"  throughput  {doc['ops_per_second']:.1f} ops/s over {doc['elapsed_seconds']:.3f} s")
    lines.append(f"  results     ok {doc['ok']}, not found {doc['not_found']}, errors {doc['error_count']}")
    lat = doc["latency_us"]
    lines.append(
        "  latency us  "
        + ", ".join(f"{k} {lat[k]}" for k in ("p50", "p99", "p999", "p9999", "max"))
        + f", mean {lat['mean']}"
    )
    for label, count in doc["errors"].items():
        lines.append(f"  error       {label} x{count}: {doc['error_examples'].get(label, '')}")
    return "\n".join(lines)


def format_progress(done: int, total: int, ops_per_second: float, errors: int) -> str:
    return f"{done}/{total} ops  {ops_per_second:.0f} ops/s  {errors} errors"
