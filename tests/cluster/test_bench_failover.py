"""`pegasus-bench failover` against a real onebox: it kills the primary of partition 0 with SIGKILL, measures how
long writes stop, and with --restart starts the server again, tied to the onebox's life."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from tests.cluster.onebox_harness import wait_pid_gone

from pegasus_node.base.pids import pid_alive


def test_failover_restart_measures_the_gap_and_leaves_no_orphan(onebox_factory):
    box = onebox_factory("bench_failover", replicas=3,
                         extra_args=["--lease", "1", "--grace", "1.5", "--beacon-interval", "0.25"])
    run = subprocess.run([sys.executable, "-m", "pegasus_node.bench.cli", "failover", "--onebox", str(box.data_dir),
                          "--table", "temp", "--restart", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    doc = json.loads(run.stdout)
    restarted = doc["restarted_pid"]
    box.known_pids.add(restarted)  # stopped by pid at teardown whatever happens below
    assert doc["recovered"] and doc["error_count"] == 0
    assert doc["partitions_led"] and all(isinstance(gap, float) for gap in doc["unavailable_seconds"].values())
    # The meta server names a new primary only once the dead one missed beacons for the grace period (1.5 s; it
    # last beaconed at most 0.25 s before the kill). A shorter gap is an acknowledgement the dead primary sent
    # before it died, counted as a write after the kill: the measurement's own error.
    assert all(gap >= 1.0 for gap in doc["unavailable_seconds"].values()), doc["unavailable_seconds"]
    assert not pid_alive(doc["killed_pid"]) and pid_alive(restarted)
    # SIGTERM to the onebox alone (the harness's stop would kill every pid it knows): the restarted server is not
    # the onebox's child, and must follow it anyway.
    box.proc.send_signal(signal.SIGTERM)
    box.proc.wait(20)
    assert wait_pid_gone(restarted, 15), "the restarted server outlived its onebox"


def test_failover_of_the_leading_meta_server_stops_writes_only_until_another_leads(onebox_factory, zookeeper):
    box = onebox_factory("bench_meta_failover", replicas=3,
                         extra_args=["--metas", "2", "--zookeeper", zookeeper.hosts,
                                     "--lease", "1", "--grace", "1.5", "--beacon-interval", "0.25"])
    run = subprocess.run([sys.executable, "-m", "pegasus_node.bench.cli", "failover", "--onebox", str(box.data_dir),
                          "--table", "temp", "--kill", "meta-leader", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    doc = json.loads(run.stdout)
    assert doc["kill"] == "meta-leader" and doc["killed"] in box.meta.split(",")
    assert doc["recovered"] and len(doc["unavailable_seconds"]) == 8
    # Leases (1 s) run out before the killed leader's ZooKeeper session does (it was last heard from at most a
    # third of the 4 s session before the kill), so every primary stops serving for a while; then the new
    # leader acknowledges beacons and writes resume.
    assert all(gap >= 1.0 for gap in doc["unavailable_seconds"].values()), doc["unavailable_seconds"]
    assert not pid_alive(doc["killed_pid"])
