"""The monitor's own cost, for BENCHMARKS.md (a script, not a test):

    .venv/bin/python -m tests.tui.measure_cost [--seconds 60] [--pairs 8] [--ops 15000]

Starts a onebox (3 replica servers) with a table of 1000 partitions (replica count 1), then
1. runs the monitor at a 1 s refresh in an 80x24 tmux pane, on the Partitions view of that table and then on
   the Nodes view, and reads its CPU (utime + stime from /proc/PID/stat) over ``--seconds`` each;
2. runs ``pegasus-bench`` (set workload on that table) without and with the monitor running, in ABBA order
   so that drift of a shared machine cancels out, and prints the ratio of the median throughputs.
Every process it starts is stopped by pid at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.cluster.onebox_harness import Onebox
from tests.tui.tmux_pane import REPO, Pane

TABLE = "big"
PARTITIONS = 1000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def create_table(meta: str) -> None:
    from pegasus_node.base.reactor import install_reactor

    loop = install_reactor()
    from pegasus_node.client.admin import MetaAdmin

    async def create() -> None:
        admin = MetaAdmin(meta)
        try:
            await admin.create_app(TABLE, PARTITIONS, 1).asFuture(loop)
        finally:
            await admin.close().asFuture(loop)

    loop.run_until_complete(create())


def start_monitor(meta: str, view: str) -> Pane:
    pane = Pane([sys.executable, "-m", "pegasus_shell.tui", "--meta", meta, "--interval", "1", "--table", TABLE])
    pane.wait_for(lambda s: "2 tables" in s, 20, "the monitor showing the cluster")  # temp and big
    pane.press(view)
    time.sleep(3)  # the view filled, caches warm
    return pane


def monitor_cpu(meta: str, view: str, seconds: float) -> float:
    pane = start_monitor(meta, view)
    try:
        start, at = cpu_seconds(pane.pid), time.monotonic()
        time.sleep(seconds)
        return (cpu_seconds(pane.pid) - start) / (time.monotonic() - at)
    finally:
        pane.close()


def bench(meta: str, ops: int) -> float:
    command = [str(Path(sys.executable).parent / "pegasus-bench"), "--meta", meta, "--table", TABLE,
               "--workload", "set", "--ops", str(ops), "--concurrency", "10", "--json"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout
    return json.loads(out.strip().splitlines()[-1])["ops_per_second"]


def bench_pairs(meta: str, pairs: int, ops: int) -> None:
    without, with_monitor, monitor_share = [], [], []
    for i in range(pairs):
        for run_with in ((False, True) if i % 2 == 0 else (True, False)):
            if not run_with:
                without.append(bench(meta, ops))
                print(f"pair {i}: without the monitor {without[-1]:7.0f} ops/s", flush=True)
                continue
            pane = start_monitor(meta, "3")
            try:
                start, at = cpu_seconds(pane.pid), time.monotonic()
                with_monitor.append(bench(meta, ops))
                monitor_share.append((cpu_seconds(pane.pid) - start) / (time.monotonic() - at))
            finally:
                pane.close()
            print(f"pair {i}: with the monitor    {with_monitor[-1]:7.0f} ops/s "
                  f"(monitor {100 * monitor_share[-1]:.1f}% of a core)", flush=True)
    a, b = statistics.median(without), statistics.median(with_monitor)
    print(f"median without {a:.0f} ops/s, with {b:.0f} ops/s: ratio {b / a:.3f} (slowdown {100 * (1 - b / a):.1f}%); "
          f"spread without {min(without):.0f}..{max(without):.0f}; monitor during the runs: median "
          f"{100 * statistics.median(monitor_share):.1f}% of a core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--ops", type=int, default=15000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="monitor-cost-") as tmp:
        box = Onebox(Path(tmp) / "box", replicas=3)
        try:
            box.start()
            create_table(box.meta)
            time.sleep(5)  # every replica of the new table opened
            for view, name in (("3", "Partitions"), ("1", "Nodes")):
                share = monitor_cpu(box.meta, view, args.seconds)
                print(f"monitor CPU, 1 s refresh, {PARTITIONS} partitions, {name} view: "
                      f"{100 * share:.1f}% of one core over {args.seconds:g} s", flush=True)
            if args.pairs:
                bench_pairs(box.meta, args.pairs, args.ops)
        finally:
            box.stop()


if __name__ == "__main__":
    main()
