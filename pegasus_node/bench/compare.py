"""``pegasus-bench compare``: the transport ceiling, set and get, in one run, as ratios.

The machines we measure on are small and noisy, so absolute figures drift from minute to minute. Ratios
measured back to back in one process are what we quote: each round runs the echo ceiling (fanned out over
the replica servers that host the table, as the KV calls are), then ``set``, then ``get`` of what ``set``
wrote; the report gives every round and the median ratio.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from pegasus_node.bench.report import report_document
from pegasus_node.bench.runner import ProgressCallback, run_loops, stall_limit
from pegasus_node.bench.workloads import KeySpace, echo_op, get_op, make_value, set_op


async def run_compare(reactor: Any, args: argparse.Namespace, on_progress: ProgressCallback | None = None) -> dict:
    from pegasus_node.client import Client

    client = Client(args.meta, reactor=reactor, timeout=args.timeout)
    rounds = []
    try:
        table = await client.open_table(args.table)
        config = await client.admin.query_config(args.table)
        servers = sorted({p["primary"] for p in config["partitions"] if p["primary"]})
        value = make_value(args.value_size)
        for round_index in range(args.rounds):
            keys = KeySpace(args.hash_keys)
            figures = {}
            for name, op in (
                ("ceiling", echo_op(client.pool, servers, value, args.timeout)),
                ("set", set_op(table, keys, value)),
                ("get", get_op(table, keys, value)),
            ):
                result = await run_loops(op, args.ops, args.concurrency, clock=reactor, on_progress=on_progress,
                                         give_up_after=stall_limit(args.timeout))
                figures[name] = report_document(
                    mode="ceiling" if name == "ceiling" else "kv", workload="echo" if name == "ceiling" else name,
                    target=",".join(servers) if name == "ceiling" else ",".join(client.meta_servers),
                    table=None if name == "ceiling" else args.table, ops=args.ops, value_size=args.value_size,
                    hash_keys=None if name == "ceiling" else args.hash_keys, result=result)
            ceiling = figures["ceiling"]["ops_per_second"] or 1.0
            rounds.append({
                "round": round_index + 1,
                "ceiling_ops_per_second": figures["ceiling"]["ops_per_second"],
                "set_ops_per_second": figures["set"]["ops_per_second"],
                "get_ops_per_second": figures["get"]["ops_per_second"],
                "set_ratio": figures["set"]["ops_per_second"] / ceiling,
                "get_ratio": figures["get"]["ops_per_second"] / ceiling,
                "error_count": sum(f["error_count"] for f in figures.values()),
                "latency_us": {name: f["latency_us"] for name, f in figures.items()},
            })
    finally:
        await client.close()
    return {
        "tool": "pegasus-bench",
        "schema_version": 1,
        "mode": "compare",
        "table": args.table,
        "replica_count": config["app"]["replica_count"],
        "partition_count": config["app"]["partition_count"],
        "servers": servers,
        "ops": args.ops,
        "concurrency": args.concurrency,
        "value_size": args.value_size,
        "rounds": rounds,
        "median_set_ratio": statistics.median(r["set_ratio"] for r in rounds),
        "median_get_ratio": statistics.median(r["get_ratio"] for r in rounds),
        "error_count": sum(r["error_count"] for r in rounds),
    }


def format_compare(doc: dict) -> str:
    lines = [
        # The server count matters: the ceiling's echo fans out over the same servers as the table's calls.
        f"pegasus-bench compare: table {doc['table']} ({doc['partition_count']} partitions, "
        f"{doc['replica_count']} replicas, primaries on {_servers(len(doc['servers']))}), {doc['ops']} ops per run, "
        f"concurrency {doc['concurrency']}, value {doc['value_size']} B",
        f"{'round':>5} {'ceiling ops/s':>14} {'set ops/s':>10} {'get ops/s':>10} {'set/ceil':>9} {'get/ceil':>9}",
    ]
    for r in doc["rounds"]:
        lines.append(f"{r['round']:>5} {r['ceiling_ops_per_second']:>14.0f} {r['set_ops_per_second']:>10.0f} "
                     f"{r['get_ops_per_second']:>10.0f} {r['set_ratio']:>9.2f} {r['get_ratio']:>9.2f}")
    lines.append(f"median  set/ceiling {doc['median_set_ratio']:.2f}  get/ceiling {doc['median_get_ratio']:.2f}"
                 f"  errors {doc['error_count']}")
    return "\n".join(lines)


def _servers(count: int) -> str:
    return f"{count} server" if count == 1 else f"{count} servers"
