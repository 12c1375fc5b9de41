"""The four views, each a list of columns and a function from a snapshot to rows, shown in a RowTable.

A refresh that keeps the same rows in the same order only updates the cells that changed, so the cursor,
the scroll position and the CPU cost stay put even with a thousand partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from pegasus_shell.health import HEALTHY, READ_UNHEALTHY
from pegasus_shell.tui import cells
from pegasus_shell.tui.cells import dash, styled
from pegasus_shell.tui.model import ALIVE, NO_ANSWER, UNALIVE, Snapshot

Row = tuple[str, tuple[Text, ...]]  # (key, cells)

NODE_STATUS_STYLE = {ALIVE: "green", UNALIVE: "bold red reverse", NO_ANSWER: "bold yellow"}
EVENT_STYLE = {"node_dead": "bold red", "node_alive": "green", "config_changed": "yellow"}


@dataclass(frozen=True)
class ViewSpec:
    id: str
    title: str
    key: str  # the number key that shows it
    columns: tuple[tuple[str, str], ...]  # (column key, label)
    rows: Callable[[Snapshot], list[Row]]


def node_rows(snapshot: Snapshot) -> list[Row]:
    rows = []
    for n in snapshot.nodes:
        status = n.status
        rows.append((n.address, (
            styled(n.address, "bold" if n.leader else ""),
            styled(n.role),
            styled(status, NODE_STATUS_STYLE.get(status, "")),
            styled(cells.duration_ms(n.lease_remaining_ms)),
            styled(cells.duration_ms(n.last_beacon_age_ms)),
            styled(dash(n.primary_count)),
            styled(dash(n.secondary_count)),
            styled(cells.rate(n.ops_per_second)),
            styled(cells.sparkline(n.ops_history), "cyan"),
        )))
    return rows


def table_rows(snapshot: Snapshot) -> list[Row]:
    rows = []
    for t in snapshot.tables:
        bad = bool(t.unhealthy)
        style = "bold red" if t.read_unhealthy else "bold yellow" if bad else ""
        marker = "!" if bad else " "
        rows.append((t.name, (
            styled(f"{marker}{t.name}", "reverse" if t.name == snapshot.selected_table else ""),
            styled(str(t.app_id)),
            styled(str(t.partition_count)),
            styled(str(t.replica_count)),
            styled(dash(t.fully_healthy), "green" if not bad else ""),
            styled(dash(t.unhealthy), style),
            styled(dash(t.write_unhealthy), style),
            styled(dash(t.read_unhealthy), style),
        )))
    return rows


def partition_rows(snapshot: Snapshot) -> list[Row]:
    rows = []
    for p in snapshot.partitions:
        bad = p.health != HEALTHY
        style = ("bold red reverse" if p.health == READ_UNHEALTHY else "bold yellow") if bad else ""
        gpid = f"{p.gpid[0]}.{p.gpid[1]}"
        values = (
            f"{'!' if bad else ' '}{gpid}",
            p.health,
            str(p.ballot),
            dash(p.primary),
            dash(p.last_committed_decree),
            dash(p.last_prepared_decree),
            cells.pending(p.pending_mutations, p.queued_writes),
            cells.duration_ms(p.primary_lease_remaining_ms),
            cells.addresses(p.secondaries),
            cells.learners(p.learners, p.learner_progress),
        )
        rows.append((gpid, tuple(styled(v, style) for v in values)))
    return rows


def event_rows(snapshot: Snapshot) -> list[Row]:
    return [
        (f"{e.seq}@{e.time}", (
            styled(cells.clock(e.time)),
            styled(e.kind, EVENT_STYLE.get(e.kind, "")),
            styled(e.message),
        ))
        for e in snapshot.events
    ]


NODES = ViewSpec("nodes", "Nodes", "1", (
    ("address", "address"), ("role", "role"), ("status", "status"), ("lease", "lease"),
    ("beacon", "beacon"), ("pri", "pri"), ("sec", "sec"), ("ops", "ops/s"), ("trend", "trend"),
), node_rows)
TABLES = ViewSpec("tables", "Tables", "2", (
    ("name", " name"), ("app_id", "id"), ("partitions", "parts"), ("replicas", "rep"),
    ("healthy", "healthy"), ("unhealthy", "unhealthy"), ("write_unhealthy", "w_unhealthy"),
    ("read_unhealthy", "r_unhealthy"),
), table_rows)
# What tells a partition's state comes first, so that it fits 80 columns; the member lists come last.
PARTITIONS = ViewSpec("partitions", "Partitions", "3", (
    ("gpid", " gpid"), ("health", "health"), ("ballot", "ballot"), ("primary", "primary"),
    ("committed", "commit"), ("prepared", "prep"), ("pending", "pend"), ("lease", "lease"),
    ("secondaries", "secondaries"), ("learners", "learners"),
), partition_rows)
EVENTS = ViewSpec("events", "Events", "4", (("time", "time"), ("kind", "kind"), ("message", "message")), event_rows)

VIEWS: tuple[ViewSpec, ...] = (NODES, TABLES, PARTITIONS, EVENTS)


def matches(row: Row, needle: str) -> bool:
    """Case-insensitive substring match against any cell of the row."""
    return any(needle in cell.plain.lower() for cell in row[1])


def _same(a: Text, b: Text) -> bool:
    return a is b or (a.plain == b.plain and a.style == b.style)


class RowTable(DataTable):
    """A DataTable fed whole lists of keyed rows."""

    def __init__(self, spec: ViewSpec, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, id=f"{spec.id}-table", **kwargs)
        self.spec = spec
        self._rows: list[Row] = []

    def on_mount(self) -> None:
        for key, label in self.spec.columns:
            self.add_column(label, key=key)

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self._rows]

    @property
    def cursor_key(self) -> str | None:
        if 0 <= self.cursor_row < len(self._rows):
            return self._rows[self.cursor_row][0]
        return None

    def show(self, rows: list[Row]) -> None:
        if [k for k, _ in rows] == self.keys:
            columns = [self.columns[ColumnKey(key)] for key, _ in self.spec.columns]
            for (key, new), (_, old) in zip(rows, self._rows):
                for column, a, b in zip(columns, new, old):
                    if not _same(a, b):
                        # Only a wider value widens the column: asking DataTable to fit a narrower one makes it
                        # measure the whole column again, per cell, which is quadratic in the rows.
                        wider = a.cell_len > column.content_width
                        self.update_cell(key, column.key, a, update_width=wider)
            self._rows = rows
            return
        keep = self.cursor_key
        self.clear()
        for key, values in rows:
            self.add_row(*values, key=key)
        self._rows = rows
        keys = self.keys
        if keep in keys:
            self.move_cursor(row=keys.index(keep), animate=False)
