"""Turning command results into text: rich tables for people, one JSON document per command for scripts.

Commands return plain data (dicts, lists, bytes); nothing else prints. The JSON shapes are documented in
``pegasus_shell/JSON_SCHEMA.md``; bytes appear there in the Pegasus shell's ``escape_all`` spelling.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import time
from typing import Any, Callable, Iterator, TextIO

from rich.console import Console
from rich.table import Table

from pegasus_shell.errors import ShellError
from pegasus_shell.escape import escape


# ------------------------------------------------------------------------------------------- JSON


def to_json_value(value: Any) -> Any:
    """Data as JSON: bytes become their escaped spelling, tuples lists."""
    if isinstance(value, (bytes, bytearray)):
        return escape(bytes(value))
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    return value


def json_document(command: str | None, line: str, data: Any = None, error: ShellError | None = None) -> str:
    doc: dict[str, Any] = {"command": command, "input": line, "ok": error is None}
    if error is None:
        doc["data"] = to_json_value(data)
    else:
        doc["error"] = error.to_dict()
        if error.data is not None:
            doc["data"] = to_json_value(error.data)
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":"))


# ------------------------------------------------------------------------------------------- helpers


def quoted(data: bytes | None) -> str:
    """A key or value as the Pegasus shell prints it: always in double quotes, escaped."""
    return '"' + escape(data or b"") + '"'


def fmt_time(epoch: int | float | None) -> str:
    if not epoch:
        return "-"
    return time.strftime("%Y-%m-%d_%H:%M:%S", time.localtime(epoch))


def fmt_value(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(fmt_value(v) for v in value) if value else "-"
    if isinstance(value, (bytes, bytearray)):
        return quoted(bytes(value))
    if isinstance(value, dict):
        return json.dumps(to_json_value(value), sort_keys=True)
    return str(value)


def new_table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def key_value_table(pairs: list[tuple[str, Any]]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in pairs:
        table.add_row(key, ":  " + fmt_value(value))
    return table


def _kv_lines(out: Console, rows: list[dict], with_values: bool = True) -> None:
    for row in rows:
        line = f"{quoted(row['hash_key'])} : {quoted(row['sort_key'])}"
        if with_values and row.get("value") is not None:
            line += f" => {quoted(row['value'])}"
        out.print(line, soft_wrap=True, markup=False, highlight=False)


# ------------------------------------------------------------------------------------------- per command

Human = Callable[[Console, dict], None]
HUMAN: dict[str, Human] = {}


def human(*names: str) -> Callable[[Human], Human]:
    def register(fn: Human) -> Human:
        for name in names:
            HUMAN[name] = fn
        return fn

    return register


@human("monitor")
def _monitor(out: Console, data: dict) -> None:
    out.print(f"monitor closed (refreshed every {data['interval']:g} s)")


@human("ls")
def _ls(out: Console, data: dict) -> None:
    rows = data["tables"]
    columns = ["app_id", "status", "app_name", "partition_count", "replica_count", "create_time"]
    dropped = any(r["status"] != "AVAILABLE" for r in rows)
    if dropped:
        columns += ["drop_time", "expire_time"]
    if data["detail"]:
        columns += ["fully_healthy", "unhealthy", "write_unhealthy", "read_unhealthy"]
    table = new_table(*columns)
    for r in rows:
        cells = [r["app_id"], r["status"], r["name"], r["partition_count"], r["replica_count"],
                 fmt_time(r["create_time"])]
        if dropped:
            cells += [fmt_time(r["drop_time"]), fmt_time(r["expire_time"])]
        if data["detail"]:
            cells += [r.get(k) for k in ("fully_healthy", "unhealthy", "write_unhealthy", "read_unhealthy")]
        table.add_row(*(fmt_value(c) for c in cells))
    out.print(table)
    out.print(f"{len(rows)} tables", highlight=False)


@human("use")
def _use(out: Console, data: dict) -> None:
    out.print(f"OK, using table {data['table']} (app_id {data['app_id']}, {data['partition_count']} partitions)",
              highlight=False, markup=False)


@human("cc")
def _cc(out: Console, data: dict) -> None:
    out.print(f"connected to cluster {data['cluster']} (meta servers: {','.join(data['meta_servers'])})",
              highlight=False, markup=False)


@human("create")
def _create(out: Console, data: dict) -> None:
    t = data["table"]
    line = (f'create table "{t["name"]}" succeeded: app_id {t["app_id"]}, {t["partition_count"]} partitions, '
            f'{t["replica_count"]} replicas')
    if data["waited"]:
        line += f"; {data['healthy_partitions']}/{t['partition_count']} partitions healthy"
    out.print(line, highlight=False, markup=False)


@human("drop")
def _drop(out: Console, data: dict) -> None:
    t = data["table"]
    out.print(f'drop table "{t["name"]}" succeeded; "recall {t["app_id"]}" brings it back until '
              f'{fmt_time(t["expire_time"])}', highlight=False, markup=False)


@human("recall")
def _recall(out: Console, data: dict) -> None:
    t = data["table"]
    out.print(f'recall table {t["app_id"]} succeeded: table "{t["name"]}" is available again',
              highlight=False, markup=False)


@human("nodes")
def _nodes(out: Console, data: dict) -> None:
    columns = ["address", "status", "replica_count", "primary_count", "secondary_count"]
    if data["detail"]:
        columns += ["last_beacon_age_ms", "lease_remaining_ms"]
    table = new_table(*columns)
    for n in data["nodes"]:
        table.add_row(*(fmt_value(n[c]) for c in columns))
    out.print("[details]", markup=False)
    out.print(table)
    out.print("[summary]", markup=False)
    out.print(key_value_table(list(data["summary"].items())))


@human("partitions")
def _partitions(out: Console, data: dict) -> None:
    out.print("[parameters]", markup=False)
    out.print(key_value_table([(k, data[k]) for k in ("table", "app_id", "partition_count", "replica_count")]))
    table = new_table("pidx", "ballot", "primary", "secondaries", "learners", "last_committed_decree", "health")
    for p in data["partitions"]:
        style = None if p["health"] == "healthy" else "bold red"
        table.add_row(*(fmt_value(p[c]) for c in ("pidx", "ballot", "primary", "secondaries", "learners",
                                                   "last_committed_decree", "health")), style=style)
    out.print("[details]", markup=False)
    out.print(table)
    out.print("[healthy]", markup=False)
    out.print(key_value_table([(f"{k}_partition_count", v) for k, v in data["summary"].items()]))


@human("cluster-info")
def _cluster_info(out: Console, data: dict) -> None:
    out.print(key_value_table(list(data.items())))


def _remote_output(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(to_json_value(value), sort_keys=True)


@human("server-info")
def _server_info(out: Console, data: dict) -> None:
    table = new_table("address", "role", "version", "pid", "uptime_seconds", "leader", "status")
    for r in data["results"]:
        info = r["output"] if isinstance(r["output"], dict) else {}
        status = "ok" if r["ok"] else f"error: {r['error']}"
        leader = {True: "yes", False: "no"}.get(info.get("leading"), "")  # meta servers only
        table.add_row(r["address"], r["role"], fmt_value(info.get("version")), fmt_value(info.get("pid")),
                      fmt_value(info.get("uptime_seconds")), leader, status)
    out.print(table)


@human("remote-command")
def _remote_command(out: Console, data: dict) -> None:
    out.print(f"COMMAND: {' '.join([data['command'], *data['args']])}", highlight=False, markup=False)
    out.print()
    ok = 0
    for r in data["results"]:
        if r["ok"]:
            ok += 1
            out.print(f"CALL [{r['role']}] [{r['address']}] succeed: {_remote_output(r['output'])}",
                      highlight=False, markup=False, soft_wrap=True)
        else:
            out.print(f"CALL [{r['role']}] [{r['address']}] failed: {r['error']}",
                      highlight=False, markup=False, soft_wrap=True)
    out.print()
    out.print(f"Succeed count: {ok}\nFailed count: {len(data['results']) - ok}", highlight=False)


@human("dup", "set_dup_fail_mode")
def _dup(out: Console, data: dict) -> None:
    rows = data["duplications"]
    if data["action"] == "add" and rows:
        out.print(f"successfully add duplication [dupid: {rows[0]['dupid']}]", highlight=False)
        return
    if data["action"] != "list":
        for row in rows:
            out.print(f"duplication {row['dupid']} of {data['table']}: {row['status']}, {row['fail_mode']}",
                      highlight=False)
        return
    table = new_table("dupid", "status", "remote", "fail_mode", "create_ts_ms", "pending_mutations")
    for row in rows:
        table.add_row(str(row["dupid"]), row["status"], row["remote"], row["fail_mode"], str(row["create_ts_ms"]),
                      fmt_value(row.get("pending_mutations")))
    out.print(table)


@human("meta-level", "set_meta_level")
def _meta_level(out: Console, data: dict) -> None:
    if data["level"] != data["old_level"]:
        out.print(f"meta level changed from {data['old_level']} to {data['level']}", highlight=False)
    else:
        out.print(f"meta level: {data['level']}", highlight=False)


@human("help")
def _help(out: Console, data: dict) -> None:
    if "command" in data:
        c = data["command"]
        out.print(f"usage: {c['usage']}", markup=False, highlight=False)
        out.print(f"  {c['summary']}", markup=False, highlight=False)
        if c["aliases"]:
            out.print(f"  also spelled: {', '.join(c['aliases'])}", markup=False, highlight=False)
        rows = [(a["name"], a["help"] or ", ".join(a["choices"])) for a in c["args"] if a["help"] or a["choices"]]
        for f in c["flags"]:
            spelling = ", ".join(f["names"]) + (f" {f['metavar']}" if f["takes_value"] else "")
            default = f" (default: {f['default']})" if f["takes_value"] and f["default"] not in (None, b"") else ""
            rows.append((spelling, f"{f['help']}{default}".strip()))
        width = max((len(name) for name, _ in rows), default=0)
        for name, text in rows:
            out.print(f"  {name:<{width}}  {text}".rstrip(), markup=False, highlight=False, soft_wrap=True)
        if c["details"]:
            out.print(f"  {c['details']}", markup=False, highlight=False, soft_wrap=True)
        return
    groups = {"cluster": "Cluster and tables", "data": "Data (on the table in use)", "shell": "Shell"}
    for group, title in groups.items():
        table = new_table("command", "also", "what it does")
        for c in data["commands"]:
            if c["group"] == group:
                table.add_row(c["name"], ", ".join(c["aliases"]), c["summary"])
        out.print(f"[{title}]", markup=False)
        out.print(table)
    out.print('"help COMMAND" shows its arguments and flags.', markup=False, highlight=False)


@human("set", "del", "multi_set")
def _ok(out: Console, data: dict) -> None:
    out.print("OK")


@human("get")
def _get(out: Console, data: dict) -> None:
    out.print(quoted(data["value"]) if data["found"] else "Not found", markup=False, highlight=False,
              soft_wrap=True)


@human("multi_get", "hash_scan", "full_scan")
def _scan(out: Console, data: dict) -> None:
    _kv_lines(out, data["kvs"])
    more = ""
    if data.get("truncated") or data.get("complete") is False:
        more = " (there are more; raise -n to see them)"
    out.print(f"{len(data['kvs'])} key-value pairs got.{more}", highlight=False)


@human("multi_del")
def _multi_del(out: Console, data: dict) -> None:
    out.print(f"OK, {data['deleted_count']} sort keys deleted", highlight=False)


@human("incr")
def _incr(out: Console, data: dict) -> None:
    out.print(str(data["value"]), highlight=False)


@human("check_and_set")
def _check_and_set(out: Console, data: dict) -> None:
    out.print("Set succeed." if data["set_succeed"] else "Set failed, because check not passed.")
    if data["check_value_returned"]:
        if data["check_value_exist"]:
            out.print(f"Check value: {quoted(data['check_value'])}", markup=False, highlight=False)
        else:
            out.print("Check value not exist.")


@human("exist")
def _exist(out: Console, data: dict) -> None:
    out.print("True" if data["exists"] else "False", highlight=False)


@human("ttl")
def _ttl(out: Console, data: dict) -> None:
    if not data["exists"]:
        out.print("Not found")
    elif data["ttl_seconds"] is None:
        out.print("Infinite")
    else:
        out.print(f"TTL(seconds): {data['ttl_seconds']}", highlight=False)


@human("count")
def _count(out: Console, data: dict) -> None:
    out.print(str(data["count"]), highlight=False)


@human("count_data")
def _count_data(out: Console, data: dict) -> None:
    table = new_table("pidx", "rows")
    for p in data["partitions"]:
        table.add_row(str(p["pidx"]), str(p["rows"]))
    out.print(table)
    out.print(f"Count done, total {data['total_rows']} rows.", highlight=False)


# ------------------------------------------------------------------------------------------- renderer

_NATURAL_WIDTH = 4000
_TRAILING_BLANKS = re.compile(r"[ \t]+((?:\x1b\[[0-9;]*m)*)$")


class Renderer:
    """Where a runner sends results, errors and echoes. ``json`` switches every output to JSON."""

    def __init__(self, out: Console, err: Console, json_mode: bool = False) -> None:
        self.out = out
        self.err = err
        self.json = json_mode

    def echo(self, line: str) -> None:
        if not self.json:
            self.out.print(f">>> {line}", markup=False, highlight=False, soft_wrap=True)

    def result(self, command: str, line: str, data: Any) -> None:
        if self.json:
            self.out.print(json_document(command, line, data), markup=False, highlight=False, soft_wrap=True)
        else:
            self.human(command, data)

    def human(self, command: str, data: Any) -> None:
        """The human rendering. Tables keep their natural width, as the Pegasus shell's do (a narrow terminal
        wraps the lines rather than rich folding every cell), and lose the blanks rich pads cells with."""
        wide = Console(file=io.StringIO(), width=_NATURAL_WIDTH, no_color=self.out.no_color,
                       color_system=self.out.color_system, force_terminal=self.out.is_terminal, highlight=False)
        HUMAN[command](wide, data)
        text = wide.file.getvalue()
        self.out.file.write("\n".join(_TRAILING_BLANKS.sub(r"\1", line) for line in text.split("\n")))
        self.out.file.flush()

    def error(self, command: str | None, line: str, error: ShellError) -> None:
        if error.data is not None and not self.json and command in HUMAN:
            self.human(command, error.data)
        if self.json:
            self.err.print(json_document(command, line, error=error), markup=False, highlight=False,
                           soft_wrap=True)
        else:
            self.err.print(f"error: {error.message}", markup=False, highlight=False, soft_wrap=True,
                           style="bold red")

    def notice(self, message: str) -> None:
        """A one-line message for people (never on stdout, so it cannot break a script's parsing)."""
        if self.json:
            self.err.print(json.dumps({"notice": message}), markup=False, highlight=False, soft_wrap=True)
        else:
            self.err.print(message, markup=False, highlight=False, soft_wrap=True, style="dim")

    @contextlib.contextmanager
    def progress(self, description: str, total: float | None) -> Iterator[Any]:
        """A transient progress bar on stderr, only for a person at a terminal."""
        if self.json or not self.err.is_terminal:
            with null_progress(description, total) as task:
                yield task
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.err, transient=True) as progress:
            task_id = progress.add_task(description, total=total)
            yield _RichTask(progress, task_id)


class _RichTask:
    def __init__(self, progress: Any, task_id: Any) -> None:
        self._progress, self._id = progress, task_id

    def update(self, completed: float, total: float | None = None, description: str | None = None) -> None:
        kwargs: dict[str, Any] = {"completed": completed}
        if total is not None:
            kwargs["total"] = total
        if description is not None:
            kwargs["description"] = description
        self._progress.update(self._id, **kwargs)


class _NullTask:
    def update(self, completed: float, total: float | None = None, description: str | None = None) -> None:
        pass


@contextlib.contextmanager
def null_progress(description: str, total: float | None) -> Iterator[_NullTask]:
    yield _NullTask()


def make_consoles(no_color: bool, out: TextIO | None = None, err: TextIO | None = None) -> tuple[Console, Console]:
    """stdout and stderr consoles. Off a terminal, lines are not wrapped at 80 columns (scripts read them)."""
    out = out or sys.stdout
    err = err or sys.stderr
    no_color = no_color or bool(os.environ.get("NO_COLOR"))  # https://no-color.org: no ANSI styling at all

    def console(stream: TextIO) -> Console:
        is_tty = hasattr(stream, "isatty") and stream.isatty()
        width = None if is_tty else 200
        return Console(file=stream, no_color=no_color, width=width, highlight=False,
                       color_system=None if no_color else "auto")

    return console(out), console(err)
