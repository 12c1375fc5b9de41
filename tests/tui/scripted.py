"""A deterministic snapshot source and fixed sample snapshots for the monitor tests."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Callable

from twisted.internet.defer import Deferred

from pegasus_shell.tui.model import (
    ROLE_META, ROLE_REPLICA, UNALIVE, EventRow, NodeRow, PartitionRow, Snapshot, TableRow,
)

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC; the tests run with TZ=UTC
META = "10.0.0.1:34601"
R1, R2, R3 = "10.0.0.2:34801", "10.0.0.3:34801", "10.0.0.4:34801"


def on_loop(coro) -> Deferred:
    """Run an asyncio coroutine (Textual's run_test) from a pytest-twisted test, on the reactor's loop."""
    return Deferred.fromFuture(asyncio.ensure_future(coro))

class ScriptedSource:
    """A deterministic SnapshotSource: hands out the given snapshots in order, then repeats the last.

    With ``gate`` set, each poll waits for the gate to open, so tests can hold a poll in flight.
    """

    def __init__(self, snapshots: list[Snapshot], gate: asyncio.Event | None = None) -> None:
        assert snapshots
        self.snapshots = list(snapshots)
        self.gate = gate
        self.calls: list[str | None] = []
        self.active = 0
        self.max_active = 0

    async def poll(self, selected_table: str | None) -> Snapshot:
        self.calls.append(selected_table)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            snapshot = self.snapshots[min(len(self.calls), len(self.snapshots)) - 1]
            names = [t.name for t in snapshot.tables]
            chosen = selected_table if selected_table in names else (names[0] if names else None)
            if chosen != snapshot.selected_table:  # what the real source does: partitions of the chosen table
                snapshot = replace(snapshot, selected_table=chosen, partitions=partitions_of(chosen))
            return snapshot
        finally:
            self.active -= 1

def partitions_of(table: str | None) -> tuple[PartitionRow, ...]:
    if table == "orders":
        return ORDERS_PARTITIONS
    if table == "users":
        return USERS_PARTITIONS
    return ()

ORDERS_PARTITIONS = (
    # replication fields reported
    PartitionRow((1, 0), 5, R1, (R2,), (R3,), "unhealthy", 1200, 1203, 3, 12, 3400),
    PartitionRow((1, 1), 4, R2, (R1, R3), (), "healthy", 980, 980, 0, 0, 3900),
    # a partition whose primary is dead: no primary serves it
    PartitionRow((1, 2), 7, R3, (), (), "read_unhealthy", 40, None, None, None, None),
    # nothing but the meta server's view (fields absent show "-")
    PartitionRow((1, 3), 3, R1, (R2, R3), (), "healthy", 77),
)
USERS_PARTITIONS = (
    PartitionRow((2, 0), 1, R2, (), (), "healthy", 5, None, None, None, 3100),
    PartitionRow((2, 1), 1, R1, (), (), "healthy", 9, None, None, None, 3100),
)

def sample_snapshot(refresh: int = 1, **changes) -> Snapshot:
    nodes = (
        NodeRow(META, ROLE_META, None, True, leader=True),
        NodeRow(R1, ROLE_REPLICA, "alive", True, 3400, 600, 2, 1, 1520.0,
                (0.0, 200.0, 800.0, 1500.0, 1400.0, 1520.0)),
        NodeRow(R2, ROLE_REPLICA, "alive", False, 1200, 2800, 1, 2, None, (300.0, 310.0, 0.0)),
        NodeRow(R3, ROLE_REPLICA, UNALIVE, False, 0, 7100, 1, 1, None, (50.0, 0.0)),
    )
    tables = (
        TableRow(1, "orders", "AVAILABLE", 4, 3, 2, 2, 1, 1),
        TableRow(2, "users", "AVAILABLE", 2, 1, 2, 0, 0, 0),
    )
    events = (
        EventRow(5, T0 - 2, "node_dead", f"replica server {R3} declared dead: no beacon for 5 s"),
        EventRow(4, T0 - 20, "config_changed", "1.0 ballot 4 -> 5: primary 10.0.0.4:34801 -> 10.0.0.2:34801"),
        EventRow(3, T0 - 60, "table_created", "created table users (app_id 2, 2 partitions, 1 replicas)"),
        EventRow(2, T0 - 61, "table_created", "created table orders (app_id 1, 4 partitions, 3 replicas)"),
        EventRow(1, T0 - 90, "node_alive", f"replica server {R1} joined"),
    )
    base = Snapshot(taken_at=T0 + refresh, refresh=refresh, meta_address=META, nodes=nodes, tables=tables,
                    selected_table="orders", partitions=ORDERS_PARTITIONS, events=events, meta_level="steady")
    return replace(base, **changes)

async def wait_until(condition: Callable[[], bool], pilot, timeout: float = 5.0) -> None:
    """Let the app run until ``condition()`` holds (each step gives the app's message queue a turn)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met within the time limit")
        await pilot.pause(0.01)
