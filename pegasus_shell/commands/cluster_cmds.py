"""Cluster and table commands, named as in Pegasus admin-cli with the Pegasus shell's spellings as aliases."""

from __future__ import annotations

import asyncio
import time

from pegasus_shell.commands.spec import Arg, Command, Flag, Kind, Needs, ParsedArgs
from pegasus_shell.context import ShellContext
from pegasus_shell.errors import ShellError, UsageError, to_shell_error
from pegasus_shell.health import HEALTHY, health_summary, partition_health

META_LEVELS = ("steady", "lively", "freezed")
CREATE_POLL_SECONDS = 0.2
DEFAULT_REPLICA_COUNT = 3


def _table_row(app: dict) -> dict:
    return {
        "app_id": app["app_id"],
        "name": app["name"],
        "status": app["status"].removeprefix("AS_"),
        "partition_count": app["partition_count"],
        "replica_count": app["replica_count"],
        "create_time": int(app.get("create_time") or 0),
        "drop_time": int(app.get("drop_time") or 0),
        "expire_time": int(app.get("expire_time") or 0),
        "envs_count": len(app.get("envs") or {}),
    }


def _partition_rows(partitions: list[dict], replica_count: int) -> list[dict]:
    return [
        {
            "pidx": p["gpid"][1],
            "ballot": p["ballot"],
            "primary": p["primary"],
            "secondaries": list(p["secondaries"]),
            "learners": list(p.get("learners") or []),
            "last_committed_decree": p.get("last_committed_decree", 0),
            "health": partition_health(p, replica_count),
        }
        for p in partitions
    ]


async def run_ls(ctx: ShellContext, args: ParsedArgs) -> dict:
    conn = ctx.connection
    apps = await conn.list_apps("all" if args.drop else "available")
    rows = [_table_row(a) for a in apps]
    ctx.cache.tables = sorted(r["name"] for r in rows if r["status"] == "AVAILABLE")
    if args.detail:
        for row in rows:
            if row["status"] != "AVAILABLE":
                row.update(fully_healthy=None, unhealthy=None, write_unhealthy=None, read_unhealthy=None)
                continue
            _, partitions = await conn.query_config(row["name"])
            row.update(health_summary(partitions, row["replica_count"]))
    return {"tables": rows, "detail": bool(args.detail)}


async def _default_replica_count(ctx: ShellContext) -> int:
    """Pegasus's default of 3, lowered to what the cluster can hold: its alive replica servers."""
    alive = sum(1 for n in await ctx.connection.list_nodes() if n["status"] == "alive")
    return max(1, min(DEFAULT_REPLICA_COUNT, alive))


async def run_create(ctx: ShellContext, args: ParsedArgs) -> dict:
    conn = ctx.connection
    replicas = args.replicas or await _default_replica_count(ctx)
    app = await conn.create_app(args.table, args.partitions, replicas)
    if args.table not in ctx.cache.tables:
        ctx.cache.tables = sorted([*ctx.cache.tables, args.table])
    result = {"table": _table_row(app), "healthy_partitions": 0, "waited": not args.no_wait}
    if args.no_wait:
        return result
    total = app["partition_count"]
    deadline = time.monotonic() + args.timeout
    healthy = 0
    with _progress(ctx, f"creating {args.table}", total) as task:
        while True:
            _, partitions = await conn.query_config(args.table)
            healthy = sum(1 for p in partitions if partition_health(p, app["replica_count"]) == HEALTHY)
            task.update(healthy)
            if healthy == total:
                break
            if time.monotonic() >= deadline:
                result["healthy_partitions"] = healthy
                raise ShellError(
                    f"create: table {args.table} was created, but only {healthy} of {total} partitions are "
                    f"healthy after {args.timeout}s (see: partitions {args.table})",
                    "ERR_NOT_HEALTHY",
                    data=result,
                )
            await asyncio.sleep(CREATE_POLL_SECONDS)
    result["healthy_partitions"] = healthy
    return result


def _progress(ctx: ShellContext, description: str, total: float | None):
    from pegasus_shell.render import null_progress

    return (ctx.progress or null_progress)(description, total)


async def run_drop(ctx: ShellContext, args: ParsedArgs) -> dict:
    app = await ctx.connection.drop_app(args.table, args.reserve_seconds)
    ctx.cache.tables = [t for t in ctx.cache.tables if t != args.table]
    if ctx.table == args.table:
        ctx.table = None
    return {"table": _table_row(app)}


async def run_recall(ctx: ShellContext, args: ParsedArgs) -> dict:
    app = await ctx.connection.recall_app(args.app_id, args.new_name)
    ctx.cache.tables = sorted({*ctx.cache.tables, app["name"]})
    return {"table": _table_row(app)}


async def run_nodes(ctx: ShellContext, args: ParsedArgs) -> dict:
    nodes = await ctx.connection.list_nodes()
    ctx.cache.nodes = [n["address"] for n in nodes]
    rows = [
        {
            "address": n["address"],
            "status": n["status"],
            "replica_count": n.get("primary_count", 0) + n.get("secondary_count", 0),
            "primary_count": n.get("primary_count", 0),
            "secondary_count": n.get("secondary_count", 0),
            "last_beacon_age_ms": n.get("last_beacon_age_ms", -1),
            "lease_remaining_ms": n.get("lease_remaining_ms", 0),
        }
        for n in nodes
    ]
    alive = sum(1 for r in rows if r["status"] == "alive")
    summary = {"total_node_count": len(rows), "alive_node_count": alive, "unalive_node_count": len(rows) - alive}
    return {"nodes": rows, "summary": summary, "detail": bool(args.detail)}


async def run_partitions(ctx: ShellContext, args: ParsedArgs) -> dict:
    table = args.table or ctx.require_table("partitions")
    app, partitions = await ctx.connection.query_config(table)
    rows = _partition_rows(partitions, app["replica_count"])
    return {
        "table": app["name"],
        "app_id": app["app_id"],
        "partition_count": app["partition_count"],
        "replica_count": app["replica_count"],
        "partitions": rows,
        "summary": health_summary(partitions, app["replica_count"]),
    }


async def run_cluster_info(ctx: ShellContext, args: ParsedArgs) -> dict:
    info = await ctx.connection.cluster_info()
    return {"cluster": ctx.cluster_name, **info}


async def _all_nodes(ctx: ShellContext, role: str) -> list[tuple[str, str]]:
    """(address, role) of the meta servers and/or the replica servers the meta server knows."""
    conn = ctx.connection
    found: list[tuple[str, str]] = []
    if role in ("all", "meta-server"):
        found += [(a, "meta") for a in conn.meta_servers]
    if role in ("all", "replica-server"):
        nodes = await conn.list_nodes()
        ctx.cache.nodes = [n["address"] for n in nodes]
        found += [(n["address"], "replica") for n in nodes if n["status"] == "alive"]
    return found


async def _on_nodes(ctx: ShellContext, targets: list[tuple[str, str]], command: str, cmd_args: list[str]) -> list[dict]:
    async def one(address: str, role: str) -> dict:
        try:
            output = await ctx.connection.remote_command(address, command, cmd_args)
        except Exception as exc:  # each node's failure is reported in its own row
            err = to_shell_error(exc)
            return {"address": address, "role": role, "ok": False, "output": None, "error": err.message}
        return {"address": address, "role": role, "ok": True, "output": output, "error": None}

    return list(await asyncio.gather(*(one(a, r) for a, r in targets)))


def _node_targets(ctx: ShellContext, node_flag: str | None) -> list[tuple[str, str]] | None:
    if not node_flag:
        return None
    metas = set(ctx.connection.meta_servers)
    addresses = [a.strip() for a in node_flag.split(",") if a.strip()]
    if not addresses:
        raise UsageError("-n needs at least one HOST:PORT")
    return [(a, "meta" if a in metas else "replica") for a in addresses]


def _fail_if_any_failed(name: str, result: dict) -> dict:
    failed = [r["address"] for r in result["results"] if not r["ok"]]
    if failed:
        first = next(r for r in result["results"] if not r["ok"])
        raise ShellError(
            f"{name}: failed on {len(failed)} of {len(result['results'])} nodes "
            f"({first['address']}: {first['error']})",
            "ERR_REMOTE_COMMAND",
            data=result,
        )
    return result


async def run_server_info(ctx: ShellContext, args: ParsedArgs) -> dict:
    targets = _node_targets(ctx, args.node) or await _all_nodes(ctx, args.type)
    results = await _on_nodes(ctx, targets, "server-info", [])
    return _fail_if_any_failed("server-info", {"results": results})


async def run_remote_command(ctx: ShellContext, args: ParsedArgs) -> dict:
    targets = _node_targets(ctx, args.node) or await _all_nodes(ctx, args.type)
    results = await _on_nodes(ctx, targets, args.command, list(args.args or []))
    result = {"command": args.command, "args": list(args.args or []), "results": results}
    return _fail_if_any_failed("remote-command", result)


async def run_meta_level(ctx: ShellContext, args: ParsedArgs) -> dict:
    if args.action is None and args.level is not None:
        raise UsageError("meta-level: to change the level, write: meta-level set LEVEL")
    if args.action == "set" and args.level is None:
        raise UsageError(f"meta-level set: missing LEVEL ({'|'.join(META_LEVELS)})")
    return await ctx.connection.meta_level(args.level)


async def run_set_meta_level(ctx: ShellContext, args: ParsedArgs) -> dict:
    return await ctx.connection.meta_level(args.level)


_NODE_FLAGS = (
    Flag(("-n", "--node", "-l", "--node_list"), "node", Kind.NODE, metavar="NODE",
         help="HOST:PORT (comma-separated for several); default: every node of -t"),
    Flag(("-t", "--type"), "type", Kind.TEXT, default="all", metavar="TYPE",
         choices=("all", "meta-server", "replica-server"), help="all, meta-server or replica-server"),
)

COMMANDS = [
    Command(
        name="ls",
        summary="list the tables (with -d, their partition health)",
        flags=(
            Flag(("-d", "--detail", "--detailed"), "detail", help="count healthy and unhealthy partitions"),
            Flag(("--drop", "-a", "--all"), "drop", help="also list dropped tables"),
        ),
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_ls,
    ),
    Command(
        name="create",
        summary="create a table and wait until every partition is healthy",
        args=(Arg("TABLE"),),
        flags=(
            Flag(("-p", "--partitions", "--partition_count"), "partitions", Kind.POSITIVE, default=4, metavar="N"),
            Flag(("-r", "--replicas", "--replica_count"), "replicas", Kind.POSITIVE, metavar="R",
                 help="default: 3, or fewer when the cluster cannot hold 3"),
            Flag(("--no-wait",), "no_wait", help="return once the meta server has created it"),
            Flag(("--timeout",), "timeout", Kind.POSITIVE, default=60, metavar="SECONDS",
                 help="how long to wait for every partition to be healthy"),
        ),
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_create,
    ),
    Command(
        name="drop",
        summary="drop a table (it can be recalled until its reserve time ends)",
        args=(Arg("TABLE", Kind.TABLE),),
        flags=(Flag(("-r", "--reserve_seconds", "--reserve-seconds"), "reserve_seconds", Kind.NON_NEGATIVE,
                    metavar="SECONDS", help="how long it stays recallable (default: the meta server's)"),),
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_drop,
    ),
    Command(
        name="recall",
        summary="bring back a dropped table before its reserve time ends",
        args=(Arg("APP_ID", Kind.POSITIVE), Arg("NEW_NAME", optional=True)),
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_recall,
    ),
    Command(
        name="nodes",
        summary="list the replica servers and how many replicas each serves",
        flags=(Flag(("-d", "--detail", "--detailed"), "detail", help="also beacon age and lease"),),
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_nodes,
    ),
    Command(
        name="partitions",
        aliases=("table-partitions", "app"),
        summary="show a table's partitions: ballot, primary, secondaries, learners, decree, health",
        args=(Arg("TABLE", Kind.TABLE, optional=True, help="default: the table in use"),),
        flags=(Flag(("-d", "--detailed"), "detailed", help="accepted for the Pegasus shell's app -d"),),
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_partitions,
    ),
    Command(
        name="cluster-info",
        aliases=("cluster_info",),
        summary="the meta servers, the meta level, node and table counts",
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_cluster_info,
    ),
    Command(
        name="server-info",
        aliases=("server_info",),
        summary="version, role, pid and uptime of every node",
        flags=_NODE_FLAGS,
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_server_info,
    ),
    Command(
        name="meta-level",
        aliases=("get_meta_level",),
        summary="show the meta level, or change it: meta-level set steady|lively|freezed",
        args=(Arg("ACTION", optional=True, choices=("set",)), Arg("LEVEL", optional=True, choices=META_LEVELS)),
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_meta_level,
    ),
    Command(
        name="set_meta_level",
        summary="change the meta level (the Pegasus shell's spelling of meta-level set)",
        args=(Arg("LEVEL", choices=META_LEVELS),),
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_set_meta_level,
    ),
    Command(
        name="remote-command",
        aliases=("remote_command",),
        summary="run a node's remote command (help lists them; fail points live here too)",
        args=(Arg("COMMAND"), Arg("ARGS", optional=True, repeat=True)),
        flags=_NODE_FLAGS,
        needs=Needs.CLUSTER,
        group="cluster",
        execute=run_remote_command,
    ),
]
