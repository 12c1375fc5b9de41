"""Readers for Jepsen histories: etcd register logs and key-value EDN histories.

Each process runs one operation at a time: an ``:invoke`` event opens it and the process's next ``:ok``,
``:fail`` or ``:info`` event closes it. Times are line numbers. How completions are read:
- ``:ok``: the operation happened, with the completion's value as output.
- ``:fail`` on a cas: the comparison failed (output False), which still says something about the state.
- ``:fail`` on anything else: it did not happen (a write) or may have returned anything (a timed-out read):
  either way it is left out.
- ``:info``, or no completion by the end of the history: the outcome is unknown. Reads are left out; writes
  and cas may take effect at any point after their call, or never.
Operations of the nemesis (a non-numeric process) are not client operations and are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Hashable

from pegasus_node.checker import edn
from pegasus_node.checker.history import UNKNOWN, HistoryError, Operation
from pegasus_node.checker.models import APPEND, CAS, GET, PUT, READ, WRITE, KvModel, KvOp, RegisterModel

# The models these histories are written against: etcd's register starts empty (nil); the kv store reads
# "" for a key nobody wrote.
ETCD_MODEL = RegisterModel()
KV_MODEL = KvModel(initial="")

_COMPLETIONS = frozenset({"ok", "fail", "info"})
_ETCD_PREFIX = re.compile(r"INFO\s+jepsen\.util\s+-\s+")
_ETCD_EVENT = re.compile(r"(\S+)\s+:(\w+)\s+:([\w-]+)(?:\s+(.*?))?\s*\Z")


class _Pairing:
    """Matches each process's invocation with its completion and applies the rules above."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.open: dict[Hashable, tuple[int, str, KvOp]] = {}
        self.ops: list[Operation] = []
        self.invocations = 0

    def where(self, line_no: int) -> str:
        return f"{self.path}:{line_no}"

    def invoke(self, line_no: int, process: Hashable, f: str, op: KvOp) -> None:
        if process in self.open:
            earlier = self.open[process][0]
            raise HistoryError(
                f"{self.where(line_no)}: process {process} invokes again before its operation from line "
                f"{earlier} completed"
            )
        self.open[process] = (line_no, f, op)
        self.invocations += 1

    def complete(self, line_no: int, process: Hashable, type_: str, f: str, output: Any) -> KvOp:
        """Closes the process's open operation; returns its input so the caller can read the output."""
        if process not in self.open:
            raise HistoryError(f"{self.where(line_no)}: process {process} completes :{f} without an invocation")
        call_line, invoked_f, op = self.open.pop(process)
        if invoked_f != f:
            raise HistoryError(
                f"{self.where(line_no)}: process {process} completes :{f} but invoked :{invoked_f} on line "
                f"{call_line}"
            )
        is_read = op.kind in (GET, READ)
        if type_ == "ok":
            # only a read's completion carries a result; a cas that completes :ok swapped
            result = output if is_read else True if op.kind == CAS else None
            self.ops.append(Operation(process, call_line, line_no, op, result))
        elif type_ == "fail" and op.kind == CAS:
            self.ops.append(Operation(process, call_line, line_no, op, False))
        elif type_ == "info" and not is_read:
            self.ops.append(Operation(process, call_line, None, op, UNKNOWN))
        return op

    def finish(self) -> list[Operation]:
        if not self.invocations:
            raise HistoryError(f"{self.path}: no client operation found (is it the right format?)")
        for process, (call_line, _, op) in self.open.items():
            if op.kind not in (GET, READ):
                self.ops.append(Operation(process, call_line, None, op, UNKNOWN))
        self.open.clear()
        self.ops.sort(key=lambda o: o.call_time)
        return self.ops


def parse_etcd_log(path: str | Path) -> list[Operation]:
    """Reads ``INFO  jepsen.util - PROC :invoke|:ok|:fail|:info :read|:write|:cas VALUE`` lines (other log
    lines are ignored) into a history for ETCD_MODEL."""
    path = Path(path)
    pairing = _Pairing(path)
    with path.open(encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, 1):
            prefix = _ETCD_PREFIX.match(line)
            if not prefix:
                continue
            event = _ETCD_EVENT.match(line, prefix.end())
            if not event:
                raise HistoryError(f"{pairing.where(line_no)}: cannot read event {line.strip()!r}")
            proc_text, type_, f, value_text = event.groups()
            if not proc_text.isdigit():
                continue  # the nemesis
            value = _edn_value(pairing, line_no, value_text or "nil")
            process = int(proc_text)
            if type_ == "invoke":
                pairing.invoke(line_no, process, f, _etcd_input(pairing, line_no, f, value))
            elif type_ in _COMPLETIONS:
                pairing.complete(line_no, process, type_, f, value)
            else:
                raise HistoryError(f"{pairing.where(line_no)}: unknown event type :{type_}")
    return pairing.finish()


def _edn_value(pairing: _Pairing, line_no: int, text: str) -> Any:
    try:
        return edn.loads(text)
    except edn.EdnError as e:
        raise HistoryError(f"{pairing.where(line_no)}: cannot read value {text!r}: {e}") from None


def _etcd_input(pairing: _Pairing, line_no: int, f: str, value: Any) -> KvOp:
    if f == "read":
        return KvOp(READ)
    if f == "write" and _is_int(value):
        return KvOp(WRITE, None, value)
    if f == "cas" and isinstance(value, tuple) and len(value) == 2 and all(map(_is_int, value)):
        return KvOp(CAS, None, value[1], value[0])
    raise HistoryError(f"{pairing.where(line_no)}: cannot read :{f} {value!r} (expected :read, :write N, :cas [N M])")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_KV_KINDS = {"get": GET, "put": PUT, "append": APPEND}
_K_PROCESS, _K_TYPE, _K_F, _K_KEY, _K_VALUE = (edn.Keyword(k) for k in ("process", "type", "f", "key", "value"))


def parse_jepsen_kv_edn(path: str | Path) -> list[Operation]:
    """Reads one EDN map per line, ``{:process P, :type :invoke|:ok|:fail|:info, :f :get|:put|:append,
    :key "K", :value "V"}``, into a history for KV_MODEL (blank lines and ``;`` comments are skipped)."""
    path = Path(path)
    pairing = _Pairing(path)
    with path.open(encoding="utf-8") as lines:
        for line_no, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith(";"):
                continue
            event = _edn_value(pairing, line_no, line)
            if not isinstance(event, dict):
                raise HistoryError(f"{pairing.where(line_no)}: expected one EDN map per line")
            process = event.get(_K_PROCESS)
            if not _is_int(process):
                if isinstance(process, edn.Keyword):
                    continue  # the nemesis
                raise HistoryError(f"{pairing.where(line_no)}: :process must be an integer, not {process!r}")
            type_ = _keyword(pairing, line_no, event, _K_TYPE)
            f = _keyword(pairing, line_no, event, _K_F)
            if f not in _KV_KINDS:
                raise HistoryError(f"{pairing.where(line_no)}: unsupported :f :{f} (expected :get, :put, :append)")
            key, value = event.get(_K_KEY), event.get(_K_VALUE)
            try:
                hash(key)
            except TypeError:
                raise HistoryError(f"{pairing.where(line_no)}: :key {key!r} cannot be a key") from None
            if type_ == "invoke":
                if f != "get" and value is None:
                    raise HistoryError(f"{pairing.where(line_no)}: :{f} needs a :value")
                pairing.invoke(line_no, process, f, KvOp(_KV_KINDS[f], key, None if f == "get" else value))
            elif type_ in _COMPLETIONS:
                op = pairing.complete(line_no, process, type_, f, value)
                if op.key != key:
                    raise HistoryError(
                        f"{pairing.where(line_no)}: completion on key {key!r} for an invocation on {op.key!r}"
                    )
            else:
                raise HistoryError(f"{pairing.where(line_no)}: unknown :type :{type_}")
    return pairing.finish()


def _keyword(pairing: _Pairing, line_no: int, event: dict[Any, Any], field: edn.Keyword) -> str:
    value = event.get(field)
    if not isinstance(value, edn.Keyword):
        raise HistoryError(f"{pairing.where(line_no)}: {field!r} must be a keyword, not {value!r}")
    return value.name
