"""The one registry of shell commands, shared by the REPL, batch and one-shot runners (and the monitor).

Each command is declared once (:class:`~pegasus_shell.commands.spec.Command`) in one of the modules below;
its execute function returns data and never prints. :mod:`pegasus_shell.render` turns the data into text.
"""

from __future__ import annotations

from pegasus_shell.commands import cluster_cmds, data_cmds, dup_cmds, monitor_cmd, shell_cmds
from pegasus_shell.commands.spec import Arg, Command, Flag, Kind, Needs, ParsedArgs
from pegasus_shell.errors import UsageError


def _build(commands: list[Command]) -> tuple[dict[str, Command], dict[str, Command]]:
    by_name: dict[str, Command] = {}
    for command in commands:
        for name in command.names:
            if name in by_name:
                raise RuntimeError(f"command name {name!r} is declared twice")
            by_name[name] = command
    return {c.name: c for c in commands}, by_name


COMMANDS: list[Command] = [*cluster_cmds.COMMANDS, *dup_cmds.COMMANDS, *monitor_cmd.COMMANDS, *data_cmds.COMMANDS, *shell_cmds.COMMANDS]
PRIMARY, ALL_NAMES = _build(COMMANDS)


def lookup(name: str) -> Command:
    command = ALL_NAMES.get(name)
    if command is None:
        close = sorted(n for n in ALL_NAMES if n.startswith(name[:2])) if len(name) >= 2 else []
        hint = f"; did you mean {', '.join(close[:4])}?" if close else ""
        raise UsageError(f'unknown command "{name}"{hint} ("help" lists the commands)', "ERR_UNKNOWN_COMMAND")
    return command


__all__ = ["Arg", "Command", "Flag", "Kind", "Needs", "ParsedArgs", "COMMANDS", "PRIMARY", "ALL_NAMES", "lookup"]
