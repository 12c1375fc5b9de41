"""The Textual live monitor of a cluster: nodes, tables, partitions and configuration events.

Entry point: :func:`run_monitor` (``python -m pegasus_shell.tui --meta ADDR`` runs it standalone).
"""

from pegasus_shell.tui.app import MonitorApp, SnapshotReady
from pegasus_shell.tui.model import EventRow, NodeRow, PartitionRow, Snapshot, TableRow
from pegasus_shell.tui.run import run_monitor
from pegasus_shell.tui.source import ClusterSource, SnapshotSource

__all__ = [
    "ClusterSource", "EventRow", "MonitorApp", "NodeRow", "PartitionRow", "Snapshot", "SnapshotReady",
    "SnapshotSource", "TableRow", "run_monitor",
]
