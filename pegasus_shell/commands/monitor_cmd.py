"""``monitor``: the Textual live monitor (pegasus_shell/tui), opened from the shell on the same session.

The monitor's ``:`` prompt runs any shell command through this same registry, on this same session, and
shows the rendered text; leaving the monitor (``q``) returns to the REPL.
"""

from __future__ import annotations

import io
import sys

from pegasus_shell.commands.spec import Command, Flag, Kind, Needs, ParsedArgs
from pegasus_shell.context import ShellContext
from pegasus_shell.errors import UsageError


def _interval(args: ParsedArgs) -> float:
    try:
        interval = float(args.interval)
    except ValueError:
        raise UsageError(f"monitor --interval must be a number of seconds, not {args.interval!r}") from None
    if not interval > 0:
        raise UsageError(f"monitor --interval must be > 0 seconds, not {interval}")
    return interval


async def run_monitor_command(ctx: ShellContext, args: ParsedArgs) -> dict:
    interval = _interval(args)
    if ctx.json:
        raise UsageError("monitor is interactive and has no --json output; script the other commands instead")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("monitor needs a terminal (its standard input and output are not one)")
    from pegasus_shell.render import Renderer, make_consoles
    from pegasus_shell.runner import run_line
    from pegasus_shell.tui.run import run_monitor

    async def run_command(line: str) -> str:
        outcome = await run_line(ctx, line)
        if outcome is None:
            return ""
        if outcome.error is not None:
            raise outcome.error
        buffer = io.StringIO()
        out, err = make_consoles(True, buffer, buffer)
        Renderer(out, err).result(outcome.command.name, line, outcome.data)
        return buffer.getvalue()

    await run_monitor(ctx.connection.admin, interval=interval, run_command=run_command, no_color=ctx.no_color,
                      table=args.table or ctx.table)
    return {"monitor": "closed", "interval": interval}


COMMANDS = [
    Command(
        name="monitor",
        aliases=("top",),
        summary="the live monitor of nodes, tables, partitions and events (q returns here)",
        flags=(
            Flag(("-i", "--interval"), "interval", Kind.TEXT, default="1", metavar="SECONDS",
                 help="refresh interval (default 1)"),
            Flag(("-t", "--table"), "table", Kind.TABLE, metavar="TABLE", help="the table whose partitions to show"),
        ),
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_monitor_command,
    ),
]
