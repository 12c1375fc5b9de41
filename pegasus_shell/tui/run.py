"""The monitor's entry point for the shell (``pegasus-shell monitor`` and the REPL's ``monitor``)."""

from __future__ import annotations

from typing import Any

from pegasus_shell.errors import ShellError
from pegasus_shell.tui.app import MonitorApp, RunCommand
from pegasus_shell.tui.source import ClusterSource

MIN_POLL_TIMEOUT_SECONDS = 0.3
MAX_POLL_TIMEOUT_SECONDS = 5.0


def poll_timeout(interval: float) -> float:
    """Each call's deadline: under the interval, so that a silent node shows up within one refresh."""
    return max(MIN_POLL_TIMEOUT_SECONDS, min(MAX_POLL_TIMEOUT_SECONDS, 0.8 * interval))


async def run_monitor(admin: Any, *, interval: float = 1.0, run_command: RunCommand | None = None,
                      no_color: bool = False, table: str | None = None) -> None:
    """Run the monitor on the running asyncio loop (Twisted's too) until the user presses q.

    ``admin`` is a :class:`pegasus_node.client.admin.MetaAdmin`; the monitor neither closes it nor its pool.
    ``run_command`` runs one shell command line through the shell's registry and returns the rendered text
    (or raises an exception whose message is shown); without it the ``:`` prompt says commands are
    unavailable. ``no_color`` (or the NO_COLOR environment variable) renders without colour.
    """
    if not interval > 0:
        raise ValueError(f"the refresh interval must be > 0 seconds, got {interval}")
    if MonitorApp.open_count:  # ':monitor' typed in the monitor's own prompt
        raise ShellError("the monitor is already open (q closes it)", "ERR_MONITOR_OPEN")
    source = ClusterSource(admin, timeout=poll_timeout(interval))
    app = MonitorApp(source, interval=interval, run_command=run_command, no_color=no_color, table=table)
    await app.run_async()
