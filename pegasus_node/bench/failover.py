"""``pegasus-bench failover``: write unavailability after ``kill -9`` of a primary, on a onebox.

It reads the onebox's ``onebox.json``, writes continuously to keys of every partition of the table, kills
(SIGKILL) the replica server that is primary of partition 0, and measures, for each partition that server
led, the time from the kill to the first acknowledgement of a write *started* after the kill. The largest of
those is the write unavailability (failure detection by lease and grace, the new configuration,
reconciliation, and the client's refresh and retry). A write started before the kill does not count: its
acknowledgement may be one the dead primary sent just before it died, still on its way. The figure is an
upper bound by at most one write's latency. With ``--restart`` it then starts the killed server again with
its command.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from pegasus_node.base.keys import partition_index


def keys_for_partitions(partition_count: int, per_partition: int) -> dict[int, list[bytes]]:
    keys: dict[int, list[bytes]] = {p: [] for p in range(partition_count)}
    i = 0
    while any(len(v) < per_partition for v in keys.values()):
        key = b"failover:%d" % i
        bucket = keys[partition_index(key, partition_count)]
        if len(bucket) < per_partition:
            bucket.append(key)
        i += 1
    return keys


async def run_failover(reactor: Any, args: argparse.Namespace, on_progress=None) -> dict:
    from twisted.internet import defer, task

    from pegasus_node.client import Client, PegasusError

    manifest = json.loads((Path(args.onebox) / "onebox.json").read_text())
    client = Client(manifest["meta"], reactor=reactor, timeout=args.timeout)
    acks: dict[int, list[float]] = {}
    stop: list = []
    try:
        table = await client.open_table(args.table)
        config = await client.admin.query_config(args.table)
        victim_address = config["partitions"][0]["primary"]
        victim = next(p for p in manifest["processes"] if p["address"] == victim_address)
        led = [p["gpid"][1] for p in config["partitions"] if p["primary"] == victim_address]
        keys = keys_for_partitions(len(config["partitions"]), args.writers_per_partition)

        async def writer(pidx: int, key: bytes) -> None:
            n = 0
            while not stop:
                n += 1
                started = time.monotonic()
                try:
                    await table.set(key, b"s", b"%d" % n, timeout=args.timeout)
                    acks.setdefault(pidx, []).append((started, time.monotonic()))
                except PegasusError:
                    await task.deferLater(reactor, 0.01, lambda: None)

        writers = [defer.ensureDeferred(writer(p, k)) for p, ks in keys.items() for k in ks]
        await task.deferLater(reactor, args.warmup, lambda: None)
        killed_at = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = killed_at + args.max_wait
        while time.monotonic() < deadline:
            if all(any(started > killed_at for started, _ in acks.get(p, [])) for p in led):
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        await task.deferLater(reactor, 1.0, lambda: None)
        stop.append(True)
        await defer.gatherResults(writers)
        gaps = {}
        for p in led:
            after = [acked for started, acked in acks.get(p, []) if started > killed_at]
            gaps[p] = (min(after) - killed_at) if after else None
        restarted_pid = None
        if args.restart:
            # Tied to the onebox's life as its own nodes are: stopping the onebox stops this one too.
            command = victim["command"] + ["--exit-with-parent", str(manifest["onebox_pid"])]
            with open(victim["stdout"], "ab") as out:
                restarted_pid = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, start_new_session=True).pid
    finally:
        await client.close()
    worst = max((g for g in gaps.values() if g is not None), default=None)
    return {
        "tool": "pegasus-bench", "schema_version": 1, "mode": "failover", "table": args.table,
        "killed": victim_address, "killed_pid": victim["pid"], "partitions_led": led,
        "unavailable_seconds": {str(p): g for p, g in gaps.items()},
        "max_unavailable_seconds": worst, "recovered": all(g is not None for g in gaps.values()),
        "restarted_pid": restarted_pid,
        "error_count": 0 if all(g is not None for g in gaps.values()) else 1,
    }


def format_failover(doc: dict) -> str:
    lines = [f"pegasus-bench failover: killed {doc['killed']} (pid {doc['killed_pid']}), primary of partitions "
             f"{doc['partitions_led']} of table {doc['table']}"]
    for pidx, gap in doc["unavailable_seconds"].items():
        lines.append(f"  partition {pidx}: " + (f"writes resumed after {gap:.2f} s" if gap is not None
                                                 else "writes did not resume"))
    worst = doc["max_unavailable_seconds"]
    lines.append(f"  write unavailability: {worst:.2f} s" if worst is not None else "  write unavailability: not recovered")
    if doc["restarted_pid"]:
        lines.append(f"  restarted the killed server as pid {doc['restarted_pid']}")
    return "\n".join(lines)
