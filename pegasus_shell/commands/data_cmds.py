"""Data commands on the table in use, named as in the Pegasus shell."""

from __future__ import annotations

from pegasus_node.client.results import CheckType
from pegasus_shell.commands.spec import Arg, Command, Flag, Kind, Needs, ParsedArgs
from pegasus_shell.connection import wait
from pegasus_shell.context import ShellContext
from pegasus_shell.errors import UsageError

# The Pegasus shell's spellings: CT_VALUE_INT_LESS -> int_less, CT_NO_CHECK -> no_check.
CHECK_TYPES = {t.name.removeprefix("CT_VALUE_").removeprefix("CT_").lower(): t for t in CheckType}

HK = Arg("HASH_KEY", Kind.HASH_KEY)
SK = Arg("SORT_KEY", Kind.BYTES)


async def _table(ctx: ShellContext, command: str, follower_read: bool = False):
    return await ctx.connection.table(ctx.require_table(command), follower_read)


async def run_set(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "set")
    ttl = a.ttl or 0
    await wait(table.set(a.hash_key, a.sort_key, a.value, ttl_seconds=ttl))
    return {"hash_key": a.hash_key, "sort_key": a.sort_key, "ttl_seconds": ttl}


async def run_get(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "get", bool(a.follower_read))
    value = await wait(table.get(a.hash_key, a.sort_key))
    return {"hash_key": a.hash_key, "sort_key": a.sort_key, "found": value is not None, "value": value}


async def run_del(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "del")
    await wait(table.delete(a.hash_key, a.sort_key))
    return {"hash_key": a.hash_key, "sort_key": a.sort_key}


async def run_multi_set(ctx: ShellContext, a: ParsedArgs) -> dict:
    pairs = a.sort_key_value
    if len(pairs) % 2:
        raise UsageError("multi_set: sort keys and values come in pairs: multi_set HASH_KEY SK V [SK V]...")
    kvs = list(zip(pairs[0::2], pairs[1::2]))
    table = await _table(ctx, "multi_set")
    ttl = a.ttl or 0
    await wait(table.multi_set(a.hash_key, kvs, ttl_seconds=ttl))
    return {"hash_key": a.hash_key, "count": len(kvs), "ttl_seconds": ttl}


def _kv_rows(hash_key: bytes, kvs) -> list[dict]:
    return [{"hash_key": hash_key, "sort_key": sk, "value": v} for sk, v in kvs]


async def run_multi_get(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "multi_get", bool(a.follower_read))
    kvs, complete = await ctx.connection.multi_get(table, a.hash_key, a.sort_key or None, a.max_count)
    return {"hash_key": a.hash_key, "kvs": _kv_rows(a.hash_key, kvs), "complete": complete}


async def run_multi_del(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "multi_del")
    count = await wait(table.multi_del(a.hash_key, a.sort_key))
    return {"hash_key": a.hash_key, "deleted_count": count}


async def run_incr(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "incr")
    increment = 1 if a.increment is None else a.increment
    value = await wait(table.incr(a.hash_key, a.sort_key, increment))
    return {"hash_key": a.hash_key, "sort_key": a.sort_key, "increment": increment, "value": value}


async def run_check_and_set(ctx: ShellContext, a: ParsedArgs) -> dict:
    check_type = CHECK_TYPES[a.check_type]
    if a.set_value is None:
        raise UsageError("check_and_set: missing -v SET_VALUE")
    set_sort_key = a.set_sort_key if a.set_sort_key is not None else a.check_sort_key
    table = await _table(ctx, "check_and_set")
    result = await wait(
        table.check_and_set(
            a.hash_key,
            a.check_sort_key,
            check_type,
            a.check_operand,
            set_sort_key,
            a.set_value,
            ttl_seconds=a.ttl or 0,
            return_check_value=bool(a.return_check_value),
        )
    )
    return {
        "hash_key": a.hash_key,
        "check_sort_key": a.check_sort_key,
        "check_type": a.check_type,
        "set_sort_key": set_sort_key,
        "set_succeed": result.set_succeed,
        "check_value_returned": result.check_value_returned,
        "check_value_exist": result.check_value_exist,
        "check_value": result.check_value,
    }


async def run_exist(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "exist")
    exists = await wait(table.exist(a.hash_key, a.sort_key))
    return {"hash_key": a.hash_key, "sort_key": a.sort_key, "exists": bool(exists)}


async def run_ttl(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "ttl")
    ttl = await wait(table.ttl(a.hash_key, a.sort_key))
    # the client answers None when the record does not exist, -1 when it never expires
    return {"hash_key": a.hash_key, "sort_key": a.sort_key, "exists": ttl is not None,
            "ttl_seconds": None if ttl is None or ttl < 0 else ttl}


async def run_count(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "count")
    count = await wait(table.sortkey_count(a.hash_key))
    return {"hash_key": a.hash_key, "count": count}


async def run_hash_scan(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "hash_scan")
    rows, truncated = [], False
    async for hk, sk, value in ctx.connection.hash_scan(table, a.hash_key, a.start_sort_key or b"",
                                                          a.stop_sort_key or b"", not a.no_value):
        if a.max_count is not None and len(rows) >= a.max_count:
            truncated = True
            break
        rows.append({"hash_key": hk, "sort_key": sk, "value": value})
    return {"hash_key": a.hash_key, "kvs": rows, "truncated": truncated}


async def run_full_scan(ctx: ShellContext, a: ParsedArgs) -> dict:
    table = await _table(ctx, "full_scan")
    rows, truncated = [], False
    async for hk, sk, value in ctx.connection.full_scan(table, not a.no_value):
        if a.max_count is not None and len(rows) >= a.max_count:
            truncated = True
            break
        rows.append({"hash_key": hk, "sort_key": sk, "value": value})
    return {"kvs": rows, "truncated": truncated}


async def run_count_data(ctx: ShellContext, a: ParsedArgs) -> dict:
    from pegasus_shell.render import null_progress

    name = ctx.require_table("count_data")
    table = await ctx.connection.table(name)
    scanners = ctx.connection.partition_scanners(table)
    if a.partition is not None:
        if a.partition >= len(scanners):
            raise UsageError(f"count_data: -p must be < {len(scanners)} (the partition count of {name})")
        scanners = [scanners[a.partition]]
    counts = []
    progress = ctx.progress or null_progress
    with progress(f"counting {name}", len(scanners)) as task:
        for done, scanner in enumerate(scanners):
            rows = 0
            while batch := await wait(scanner.next_batch()):
                rows += len(batch)
            counts.append({"pidx": scanner.partitions[0], "rows": rows})
            task.update(done + 1)
    return {"table": name, "partitions": counts, "total_rows": sum(c["rows"] for c in counts)}


_MAX_COUNT = Flag(("-n", "--max_count", "--max"), "max_count", Kind.POSITIVE, metavar="N",
                  help="stop after N records")
_FOLLOWER_READ = Flag(("--follower_read", "--follower-read"), "follower_read",
                      help="read from a secondary, as fresh as from the primary (it waits for the primary's "
                           "commit point)")
_NO_VALUE = Flag(("--no-value", "--no_value"), "no_value", help="list the keys only")
_TTL_FLAG = Flag(("-t", "--ttl", "--ttl_seconds"), "ttl", Kind.NON_NEGATIVE, metavar="SECONDS",
                 help="expire after SECONDS (0: never)")


def _data(name: str, summary: str, execute, args=(), flags=(), aliases=(), details: str = "") -> Command:
    return Command(name=name, summary=summary, execute=execute, args=tuple(args), flags=tuple(flags),
                   aliases=tuple(aliases), needs=Needs.TABLE, group="data", details=details)


COMMANDS = [
    _data("set", "write one value", run_set,
          [HK, SK, Arg("VALUE", Kind.BYTES), Arg("TTL", Kind.NON_NEGATIVE, optional=True, help="seconds")]),
    _data("get", "read one value", run_get, [HK, SK], [_FOLLOWER_READ]),
    _data("del", "delete one value", run_del, [HK, SK], aliases=("delete",)),
    _data("multi_set", "write several sort keys of one hash key", run_multi_set,
          [HK, Arg("SORT_KEY_VALUE", Kind.BYTES, repeat=True, help="SK V [SK V]...")], [_TTL_FLAG],
          aliases=("multi-set",)),
    _data("multi_get", "read several sort keys of one hash key (all of them when none is given)", run_multi_get,
          [HK, Arg("SORT_KEY", Kind.BYTES, optional=True, repeat=True)], [_MAX_COUNT, _FOLLOWER_READ],
          aliases=("multi-get",)),
    _data("multi_del", "delete several sort keys of one hash key", run_multi_del,
          [HK, Arg("SORT_KEY", Kind.BYTES, repeat=True)], aliases=("multi-del",)),
    _data("incr", "add N (default 1) to an integer value and show the result", run_incr,
          [HK, SK, Arg("INCREMENT", Kind.INT, optional=True)]),
    _data("check_and_set", "set a value if a check on another (or the same) sort key passes", run_check_and_set,
          [HK],
          [
              Flag(("-c", "--check_sort_key"), "check_sort_key", Kind.BYTES, default=b"", metavar="SK"),
              Flag(("-t", "--check_type"), "check_type", Kind.TEXT, default="no_check", metavar="TYPE",
                   choices=tuple(CHECK_TYPES)),
              Flag(("-o", "--check_operand"), "check_operand", Kind.BYTES, default=b"", metavar="OPERAND"),
              Flag(("-s", "--set_sort_key"), "set_sort_key", Kind.BYTES, metavar="SK",
                   help="default: the check sort key"),
              Flag(("-v", "--set_value"), "set_value", Kind.BYTES, metavar="VALUE"),
              Flag(("-l", "--set_value_ttl_seconds"), "ttl", Kind.NON_NEGATIVE, metavar="SECONDS"),
              Flag(("-r", "--return_check_value"), "return_check_value"),
          ],
          aliases=("check-and-set",),
          details="check types: " + ", ".join(CHECK_TYPES)),
    _data("exist", "does a record exist", run_exist, [HK, SK], aliases=("exists",)),
    _data("ttl", "the remaining time to live of a record", run_ttl, [HK, SK]),
    _data("count", "count the sort keys of a hash key", run_count, [HK], aliases=("sortkey_count",)),
    _data("hash_scan", "list the records of one hash key, in sort-key order, from START up to STOP (excluded)",
          run_hash_scan,
          [HK, Arg("START_SORT_KEY", Kind.BYTES, optional=True), Arg("STOP_SORT_KEY", Kind.BYTES, optional=True)],
          [_MAX_COUNT, _NO_VALUE], aliases=("hash-scan",)),
    _data("full_scan", "list every record of the table, partition by partition", run_full_scan,
          [], [_MAX_COUNT, _NO_VALUE], aliases=("full-scan",)),
    _data("count_data", "count the records of the table, partition by partition", run_count_data,
          [], [Flag(("-p", "--partition"), "partition", Kind.NON_NEGATIVE, metavar="PIDX",
                     help="only this partition")],
          aliases=("count-data",)),
]
