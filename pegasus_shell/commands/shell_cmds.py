"""Commands about the shell session itself: help, exit, use, cc."""

from __future__ import annotations

from typing import Any

from pegasus_shell.commands.spec import Arg, Command, Flag, Kind, Needs, ParsedArgs
from pegasus_shell.config import parse_meta_list
from pegasus_shell.context import ShellContext, Target
from pegasus_shell.errors import ExitShell, UsageError


def describe(command: Command) -> dict[str, Any]:
    """A command's declaration as data (for ``help`` and its JSON)."""
    return {
        "name": command.name,
        "aliases": list(command.aliases),
        "group": command.group,
        "usage": command.usage(),
        "summary": command.summary,
        "details": command.details,
        "args": [
            {"name": a.name, "optional": a.optional, "repeat": a.repeat, "choices": list(a.choices), "help": a.help}
            for a in command.args
        ],
        "flags": [
            {
                "names": list(f.names),
                "takes_value": f.takes_value,
                "metavar": f.metavar or (f.dest.upper() if f.takes_value else ""),
                "default": f.default,
                "choices": list(f.choices),
                "help": f.help,
            }
            for f in command.flags
        ],
    }


async def run_help(ctx: ShellContext, args: ParsedArgs) -> dict:
    from pegasus_shell.commands import COMMANDS, lookup

    if args.command:
        return {"command": describe(lookup(args.command))}
    return {"commands": [describe(c) for c in COMMANDS]}


async def run_exit(ctx: ShellContext, args: ParsedArgs) -> dict:
    raise ExitShell()


async def run_use(ctx: ShellContext, args: ParsedArgs) -> dict:
    conn = ctx.connection
    app, partitions = await conn.query_config(args.table)
    await conn.table(args.table)
    ctx.table = args.table
    return {"table": args.table, "app_id": app["app_id"], "partition_count": len(partitions)}


async def run_cc(ctx: ShellContext, args: ParsedArgs) -> dict:
    if bool(args.cluster) == bool(args.meta):
        raise UsageError("cc: give either a cluster name or -m META_LIST; usage: " + CC.usage())
    if args.cluster:
        ctx.clusters.meta_list(args.cluster)  # an unknown name is a usage error before we disconnect
        target = Target(name=args.cluster)
    else:
        target = Target(meta_list=tuple(parse_meta_list(args.meta)))
    await ctx.switch_target(target)
    return {"cluster": ctx.cluster_name, "meta_servers": list(ctx.connection.meta_servers)}


CC = Command(
    name="cc",
    aliases=("connect",),
    summary="connect to another cluster (a name from clusters.ini, or -m META_LIST)",
    args=(Arg("CLUSTER", Kind.CLUSTER, optional=True, help="a cluster name from clusters.ini"),),
    flags=(Flag(("-m", "--meta"), "meta", Kind.TEXT, metavar="META_LIST", help="host:port,host:port"),),
    execute=run_cc,
)

COMMANDS = [
    Command(
        name="use",
        summary="choose the table that the data commands work on",
        args=(Arg("TABLE", Kind.TABLE, help="an available table (ls lists them)"),),
        needs=Needs.CLUSTER,
        execute=run_use,
    ),
    CC,
    Command(
        name="help",
        summary="list the commands, or show one command's usage",
        args=(Arg("COMMAND", Kind.COMMAND, optional=True),),
        execute=run_help,
    ),
    Command(name="exit", aliases=("quit",), summary="leave the shell", execute=run_exit),
]
