"""End to end: the monitor (``python -m pegasus_shell.tui``) in an 80x24 tmux pane, watching a real onebox
while one of its replica servers is killed with SIGKILL and restarted.

With PacificA replication (replica count > 1 on screen) the killed server's partitions get new primaries and
higher ballots, and the returning server comes back as a learner, then a secondary. With one replica per
partition (a cluster without replication) its partitions are left without a primary until it returns.
"""

from __future__ import annotations

import re
import shutil
import sys
import time

import pytest

from tests.cluster.onebox_harness import Onebox
from tests.tui.tmux_pane import Pane

GRACE = 2.0
INTERVAL = 0.5
FAST_FAILURE_DETECTION = ["--beacon-interval", "0.3", "--lease", "1.5", "--grace", str(GRACE)]
SLACK = 3.0  # a loaded two-core machine: process scheduling, not the monitor, sets this margin
PARTITION_ROW = re.compile(r"^\s*!?(\d+\.\d+)\s+(\w+)\s+(\d+)\s+(\S+)")

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make system-deps)")


@pytest.fixture
def box(tmp_path):
    onebox = Onebox(tmp_path / "box", replicas=3, extra_args=FAST_FAILURE_DETECTION)
    try:
        onebox.start()
        yield onebox
    finally:
        onebox.stop()


@pytest.fixture
def monitor(box):
    pane = Pane([sys.executable, "-m", "pegasus_shell.tui", "--meta", box.meta, "--interval", str(INTERVAL)])
    try:
        yield pane
    finally:
        pane.close()


def node_line(screen: str, address: str) -> str:
    return next((line for line in screen.splitlines() if line.strip().startswith(address)), "")


def partitions(screen: str) -> dict[str, tuple[str, int, str]]:
    """gpid -> (health, ballot, primary), from the Partitions view."""
    rows = {}
    for line in screen.splitlines():
        match = PARTITION_ROW.match(line)
        if match:
            rows[match[1]] = (match[2], int(match[3]), match[4])
    return rows


def replica_count(screen: str) -> int:
    return int(re.search(r"replica count (\d+)", screen)[1])


def filtered(monitor: Pane, needle: str) -> set[str]:
    """The gpids of the Partitions rows that mention ``needle`` in any column (the / filter)."""
    monitor.press("/", needle, "Enter")
    screen = monitor.wait_for(lambda s: f"filter /{needle}" in s, 5, "the filter applied")
    monitor.press("/", "Escape")
    monitor.wait_for(lambda s: "filter /" not in s, 5, "the filter cleared")
    return set(partitions(screen))


def test_monitor_shows_a_killed_replica_server_and_its_return(box, monitor):
    monitor.wait_for(lambda s: "3/3 alive" in s, 15, "three alive replica servers")
    monitor.press("3")
    screen = monitor.wait_for(lambda s: len(partitions(s)) == 8 and all(
        health == "healthy" for health, _, _ in partitions(s).values()), 15, "the 8 healthy partitions of temp")
    assert "table temp: 8 partitions" in screen
    before = partitions(screen)
    replicas = replica_count(screen)

    victim = box.replica_names()[0]
    address = box.address(victim)
    led = {gpid for gpid, (_, _, primary) in before.items() if primary == address}
    held = filtered(monitor, address)  # every partition it is a member of
    assert led and led <= held, (before, held)
    monitor.press("1")
    monitor.wait_for(lambda s: "alive" in node_line(s, address), 5, f"{address} alive")

    box.kill9(victim)
    killed_at = time.monotonic()

    def left(deadline: float) -> float:
        return deadline - (time.monotonic() - killed_at)

    monitor.wait_for(lambda s: re.search(r"no answer|unalive", node_line(s, address)), left(INTERVAL + SLACK),
                     f"{address} not answering within one refresh")
    monitor.wait_for(lambda s: "unalive" in node_line(s, address), left(GRACE + 2 * INTERVAL + SLACK),
                     f"{address} unalive")
    monitor.press("3")
    if replicas == 1:  # nobody else holds these partitions: no primary serves them until the server is back
        screen = monitor.wait_for(
            lambda s: all(partitions(s).get(g, ("",))[0] == "read_unhealthy" for g in held),
            left(GRACE + 2 * INTERVAL + SLACK), "the killed server's partitions without a primary")
        after = partitions(screen)
        assert all(after[g][0] == "healthy" for g in before if g not in held)
    else:  # PacificA: a secondary is promoted where it led; every configuration it was in gets a new ballot
        def reconfigured(s: str) -> bool:
            now = partitions(s)
            return len(now) == 8 and all(now[g][2] != address for g in led) and all(
                now[g][1] > before[g][1] for g in held)

        screen = monitor.wait_for(reconfigured, left(GRACE + 2 * INTERVAL + SLACK),
                                  "new primaries and ballots for the killed server's partitions")
        assert filtered(monitor, address) == set()  # no longer a member of any partition

    box.restart(victim)
    monitor.press("1")
    monitor.wait_for(lambda s: re.search(r"\balive\b", node_line(s, address)) and "unalive" not in node_line(
        s, address), 10, f"{address} alive again")
    monitor.press("3")
    monitor.wait_for(lambda s: len(partitions(s)) == 8 and all(
        health == "healthy" for health, _, _ in partitions(s).values()), 30, "every partition healthy again")
    assert filtered(monitor, address) == held  # a member again of every partition it held
    if replicas > 1:  # it came back as a learner, and was upgraded to secondary
        monitor.press("4")
        screen = monitor.wait_for(lambda s: f"upgrade learner {address}" in s, 10,
                                  "the learner upgraded to secondary, in the events")
        assert f"add learner {address}" in screen

    monitor.press("q")
    deadline = time.monotonic() + 10
    while monitor.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not monitor.alive(), "q did not quit the monitor"
