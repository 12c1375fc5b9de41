"""kill -9 a process that is writing, then recover: every acknowledged mutation is there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pegasus_node.storage import Mutation, StorageEngine

REPO = Path(__file__).resolve().parents[2]

# The child acknowledges a decree (writes it to stdout) only after the write_batch holding it returned.
CHILD = r"""
import os, sys, threading, time
from pegasus_node.storage import Mutation, StorageEngine, put_op

directory, mode = sys.argv[1], sys.argv[2]
engine = StorageEngine.open(directory, fsync=True, segment_max_bytes=8192)

def mutation(d):
    return Mutation(1, d, d - 1, 1_700_000_000_000_000 + d, (put_op(b"h%d" % (d % 7), b"s%06d" % d, b"v" * 200),))

def ack(d):
    os.write(1, b"%d\n" % d)

if mode == "sync":
    d = 0
    while True:
        d += 1
        m = mutation(d)
        engine.wal.sync_append(m)
        ack(d)
        engine.apply(m)
        if d % 40 == 0:
            engine.checkpoint()
else:
    def writer():
        while True:
            batch = engine.wal.take_batch()
            if batch is None:
                time.sleep(0.0005)
                continue
            engine.wal.write_batch(batch)
            ack(batch.last_decree)

    threading.Thread(target=writer, daemon=True).start()
    d = 0
    while True:
        d += 1
        engine.wal.append(mutation(d))
        while engine.wal.pending_count > 20:
            time.sleep(0.0005)
"""


def run_and_kill(directory: Path, mode: str, kill_after: int) -> int:
    """Start the writer, SIGKILL it once ``kill_after`` decrees are acknowledged; the highest acked decree."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    acked = 0
    try:
        while acked < kill_after:
            line = proc.stdout.readline()
            if not line:
                proc.wait(timeout=30)
                pytest.fail(f"the writer died on its own: {proc.stderr.read().decode()}")
            acked = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    for line in proc.stdout.read().split():  # acknowledged before the kill, still in the pipe
        acked = max(acked, int(line))
    proc.stdout.close()
    proc.stderr.close()
    return acked


@pytest.mark.parametrize("mode, kill_after", [("sync", 97), ("sync", 161), ("threaded", 250)])
def test_kill_9_loses_no_acknowledged_mutation(tmp_path, mode, kill_after):
    acked = run_and_kill(tmp_path, mode, kill_after)
    assert acked >= kill_after
    with StorageEngine.open(tmp_path, fsync=False) as engine:
        report = engine.recovery
        print(report.summary())
        if mode == "sync":
            assert report.checkpoint_decree >= 40 and report.checkpoint_decree % 40 == 0
        decrees = [m.decree for m in engine.recovered_log]
        assert decrees == list(range(report.checkpoint_decree + 1, report.checkpoint_decree + 1 + len(decrees)))
        assert report.checkpoint_decree + len(decrees) >= acked
        for mutation in engine.recovered_log:
            engine.apply(mutation)
        for d in range(1, acked + 1):
            assert engine.get(b"h%d" % (d % 7), b"s%06d" % d, now=0) == b"v" * 200, d
        # The recovered store takes new writes and survives another restart.
        engine.wal.sync_append(Mutation(1, engine.last_applied_decree + 1, 0, 0, ()))
    with StorageEngine.open(tmp_path, fsync=False) as engine:
        assert engine.recovery.torn_tail is None
