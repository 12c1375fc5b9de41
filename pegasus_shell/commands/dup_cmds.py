"""Duplication commands, as Pegasus admin-cli spells them (``dup add|list|pause|start|remove``, on the table
in use) and the Pegasus shell's ``set_dup_fail_mode``."""

from __future__ import annotations

from pegasus_shell.commands.spec import Arg, Command, Flag, Kind, Needs, ParsedArgs
from pegasus_shell.context import ShellContext
from pegasus_shell.errors import UsageError

ACTIONS = ("add", "list", "pause", "start", "remove")
STATUS_OF = {"pause": "DS_PAUSE", "start": "DS_LOG", "remove": "DS_REMOVED"}
FAIL_MODES = ("slow", "skip", "fast")


def _row(duplication: dict) -> dict:
    keep = ("dupid", "remote", "status", "fail_mode", "create_ts_ms", "confirmed", "pending_mutations")
    return {key: duplication[key] for key in keep if key in duplication}


async def run_dup(ctx: ShellContext, args: ParsedArgs) -> dict:
    conn, table = ctx.connection, ctx.table
    if args.action == "list":
        reply = await conn.query_duplication(table)
        return {"action": "list", "table": table, "duplications": [_row(d) for d in reply["duplications"]]}
    if args.action == "add":
        if not args.cluster:
            raise UsageError("dup add: missing -c CLUSTER (a cluster named in the meta servers' [pegasus.clusters])")
        duplication = await conn.add_duplication(table, args.cluster, args.fail_mode or "slow", bool(args.full))
    else:
        if args.dupid is None:
            raise UsageError(f"dup {args.action}: missing -d DUPID ('dup list' shows them)")
        duplication = await conn.modify_duplication(table, args.dupid, status=STATUS_OF[args.action])
    return {"action": args.action, "table": table, "duplications": [_row(duplication)]}


async def run_set_dup_fail_mode(ctx: ShellContext, args: ParsedArgs) -> dict:
    duplication = await ctx.connection.modify_duplication(args.table, args.dupid, fail_mode=args.mode)
    return {"action": "set_fail_mode", "table": args.table, "duplications": [_row(duplication)]}


COMMANDS = [
    Command(
        name="dup",
        summary="duplicate the table in use to another cluster: dup add -c CLUSTER, dup list, "
                "dup pause|start|remove -d DUPID",
        args=(Arg("ACTION", choices=ACTIONS),),
        flags=(
            Flag(("-c", "--cluster"), "cluster", Kind.TEXT, metavar="CLUSTER",
                 help="add: the remote cluster, as named in the meta servers' [pegasus.clusters]"),
            Flag(("-d", "--dupid"), "dupid", Kind.NON_NEGATIVE, metavar="DUPID", help="pause, start, remove"),
            Flag(("-s", "--fail_mode", "--fail-mode"), "fail_mode", Kind.TEXT, metavar="MODE", choices=FAIL_MODES,
                 help="add: what a failing shipment does (default slow: retry for ever)"),
            Flag(("-p", "--full"), "full", help="add: create the table there and copy the existing records first"),
        ),
        needs=Needs.TABLE,
        group="cluster",
        execute=run_dup,
        details="Incremental: the remote cluster must have the table already (its partition count may differ), "
                "and the writes from now on are shipped. Full (-p): the table is created there and the existing "
                "records are copied first (DS_PREPARE), then the writes. Writes a duplication received are never shipped back, so "
                "two clusters may duplicate to each other; equal keys resolve by timestamp, then cluster id "
                "([duplication-group]). incr and check_and_set are not shipped (not idempotent).",
    ),
    Command(
        name="set_dup_fail_mode",
        aliases=("set-dup-fail-mode",),
        summary="change what a failing shipment does: slow (retry for ever), skip (drop it after 3 tries), fast",
        args=(Arg("TABLE", Kind.TABLE), Arg("DUPID", Kind.NON_NEGATIVE), Arg("MODE", choices=FAIL_MODES)),
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_set_dup_fail_mode,
    ),
]
