"""``pegasus-bench failover``: write unavailability after ``kill -9`` of a primary, or of the leading meta
server, on a onebox.

It reads the onebox's ``onebox.json`` and writes continuously to keys of every partition of the table.

``--kill primary`` (the default) kills (SIGKILL) the replica server that is primary of partition 0, and
measures, for each partition that server led, the time from the kill to the first acknowledgement of a write
*started* after the kill. The largest of those is the write unavailability (failure detection by lease and
grace, the new configuration, reconciliation, and the client's refresh and retry). A write started before the
kill does not count: its acknowledgement may be one the dead primary sent just before it died, still on its
way. The figure is an upper bound by at most one write's latency.

``--kill meta-leader`` kills the leading meta server. Writes go on at first: primaries serve while their
leases last, and stop when a lease runs out before a meta server leads again and acknowledges a beacon. So the
figure is, for each partition, the longest time without an acknowledged write from the kill until the lease
after a meta server leads again, and the unavailability is the longest of those.

With ``--restart`` it then starts the killed server again with its command.
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
    acks: dict[int, list[tuple[float, float]]] = {}  # partition -> (started, acknowledged) of each write
    stop: list = []

    def sleep(seconds: float):
        return task.deferLater(reactor, seconds, lambda: None)

    try:
        table = await client.open_table(args.table)
        config = await client.admin.query_config(args.table)
        if args.kill == "meta-leader":
            info = await client.admin.cluster_info()
            victim_address, watched = info["primary_meta"], [p["gpid"][1] for p in config["partitions"]]
        else:
            victim_address = config["partitions"][0]["primary"]
            watched = [p["gpid"][1] for p in config["partitions"] if p["primary"] == victim_address]
        victim = next(p for p in manifest["processes"] if p["address"] == victim_address)
        # Its pid from itself: onebox.json keeps the first pid, and the process may have been restarted since.
        victim_pid = (await client.admin.remote_command(victim_address, "server-info"))["output"]["pid"]
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
                    await sleep(0.01)

        writers = [defer.ensureDeferred(writer(p, k)) for p, ks in keys.items() for k in ks]
        await sleep(args.warmup)
        killed_at = time.monotonic()
        os.kill(victim_pid, signal.SIGKILL)
        deadline = killed_at + args.max_wait
        if args.kill == "meta-leader":
            end = await _meta_leads_again(client, victim_address, deadline, sleep)
            gaps = {p: _longest_gap(acks.get(p, []), killed_at, end) if end else None for p in watched}
        else:
            while time.monotonic() < deadline:
                if all(any(started > killed_at for started, _ in acks.get(p, [])) for p in watched):
                    break
                await sleep(0.05)
            await sleep(1.0)
            gaps = {}
            for p in watched:
                after = [acked for started, acked in acks.get(p, []) if started > killed_at]
                gaps[p] = (min(after) - killed_at) if after else None
        stop.append(True)
        await defer.gatherResults(writers)
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
        "kill": args.kill, "killed": victim_address, "killed_pid": victim_pid, "partitions_led": watched,
        "unavailable_seconds": {str(p): g for p, g in gaps.items()},
        "max_unavailable_seconds": worst, "recovered": all(g is not None for g in gaps.values()),
        "restarted_pid": restarted_pid,
        "error_count": 0 if all(g is not None for g in gaps.values()) else 1,
    }


async def _meta_leads_again(client: Any, old_leader: str, deadline: float, sleep) -> float | None:
    """When to stop watching after the leading meta server is killed: a lease, plus a second, after another
    meta server answers as the leader (by then every lease has been renewed, or has run out); None if none
    leads before the deadline."""
    from pegasus_node.client import PegasusError

    while time.monotonic() < deadline:
        try:
            info = await client.admin.cluster_info(timeout=1.0)
        except PegasusError:
            info = None
        if info is not None and info["primary_meta"] != old_leader:
            await sleep(info["lease_seconds"] + 1.0)
            return time.monotonic()
        await sleep(0.1)
    return None


def _longest_gap(acks: list[tuple[float, float]], start: float, end: float) -> float:
    """The longest time in [start, end] with no write acknowledged."""
    times = sorted(acked for _, acked in acks if start <= acked <= end)
    edges = [start, *times, end]
    return max(b - a for a, b in zip(edges, edges[1:]))


def format_failover(doc: dict) -> str:
    if doc["kill"] == "meta-leader":
        lines = [f"pegasus-bench failover: killed the leading meta server {doc['killed']} (pid {doc['killed_pid']}); "
                 f"partitions of table {doc['table']}:"]
        resumed = "longest time without an acknowledged write: {gap:.2f} s"
    else:
        lines = [f"pegasus-bench failover: killed {doc['killed']} (pid {doc['killed_pid']}), primary of partitions "
                 f"{doc['partitions_led']} of table {doc['table']}"]
        resumed = "writes resumed after {gap:.2f} s"
    for pidx, gap in doc["unavailable_seconds"].items():
        lines.append(f"  partition {pidx}: " + (resumed.format(gap=gap) if gap is not None else "writes did not resume"))
    worst = doc["max_unavailable_seconds"]
    lines.append(f"  write unavailability: {worst:.2f} s" if worst is not None else "  write unavailability: not recovered")
    if doc["restarted_pid"]:
        lines.append(f"  restarted the killed server as pid {doc['restarted_pid']}")
    return "\n".join(lines)
