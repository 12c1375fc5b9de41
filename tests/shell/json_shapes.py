"""The documented JSON shapes (pegasus_shell/JSON_SCHEMA.md) as data, and a small strict checker.

A shape is a type (str, int, bool, float), a tuple of alternatives (``(int, None)``), a list with one item
shape, a dict of required keys (extra keys are allowed: fields may be added, never removed), or ANY.
"""

from __future__ import annotations

from typing import Any

ANY = object()
BYTES = str  # bytes travel as their escaped spelling
NUM = (int, float)

TABLE_ROW = {"app_id": int, "name": str, "status": str, "partition_count": int, "replica_count": int,
             "create_time": int, "drop_time": int, "expire_time": int, "envs_count": int}
KV = {"hash_key": BYTES, "sort_key": BYTES, "value": (BYTES, None)}
NODE_RESULT = {"address": str, "role": str, "ok": bool, "output": ANY, "error": (str, None)}
DUPLICATION = {"dupid": int, "remote": str, "status": str, "fail_mode": str, "create_ts_ms": int}
HEALTH = {"fully_healthy": int, "unhealthy": int, "write_unhealthy": int, "read_unhealthy": int}
COMMAND = {"name": str, "aliases": [str], "group": str, "usage": str, "summary": str, "details": str,
           "args": [{"name": str, "optional": bool, "repeat": bool, "choices": [str], "help": str}],
           "flags": [{"names": [str], "takes_value": bool, "metavar": str, "default": ANY, "choices": [str],
                      "help": str}]}

DATA: dict[str, Any] = {
    "ls": {"tables": [TABLE_ROW], "detail": bool},
    "use": {"table": str, "app_id": int, "partition_count": int},
    "cc": {"cluster": str, "meta_servers": [str]},
    "create": {"table": TABLE_ROW, "healthy_partitions": int, "waited": bool},
    "drop": {"table": TABLE_ROW},
    "recall": {"table": TABLE_ROW},
    "nodes": {"nodes": [{"address": str, "status": str, "replica_count": int, "primary_count": int,
                         "secondary_count": int, "last_beacon_age_ms": int, "lease_remaining_ms": int}],
              "summary": {"total_node_count": int, "alive_node_count": int, "unalive_node_count": int},
              "detail": bool},
    "partitions": {"table": str, "app_id": int, "partition_count": int, "replica_count": int,
                   "partitions": [{"pidx": int, "ballot": int, "primary": str, "secondaries": [str],
                                   "learners": [str], "last_committed_decree": int, "health": str}],
                   "summary": HEALTH},
    "cluster-info": {"cluster": str, "meta_servers": [str], "primary_meta": str, "meta_level": str,
                     "node_count": int, "alive_node_count": int, "app_count": int},
    "server-info": {"results": [NODE_RESULT]},
    "remote-command": {"command": str, "args": [str], "results": [NODE_RESULT]},
    "meta-level": {"level": str, "old_level": str},
    "dup": {"action": str, "table": str, "duplications": [DUPLICATION]},
    "set_dup_fail_mode": {"action": str, "table": str, "duplications": [DUPLICATION]},
    "set_meta_level": {"level": str, "old_level": str},
    "help": ANY,  # {commands: [COMMAND]} or {command: COMMAND}, checked by the tests directly
    "set": {"hash_key": BYTES, "sort_key": BYTES, "ttl_seconds": int},
    "get": {"hash_key": BYTES, "sort_key": BYTES, "found": bool, "value": (BYTES, None)},
    "del": {"hash_key": BYTES, "sort_key": BYTES},
    "multi_set": {"hash_key": BYTES, "count": int, "ttl_seconds": int},
    "multi_get": {"hash_key": BYTES, "kvs": [KV], "complete": bool},
    "multi_del": {"hash_key": BYTES, "deleted_count": int},
    "incr": {"hash_key": BYTES, "sort_key": BYTES, "increment": int, "value": int},
    "check_and_set": {"hash_key": BYTES, "check_sort_key": BYTES, "check_type": str, "set_sort_key": BYTES,
                      "set_succeed": bool, "check_value_returned": bool, "check_value_exist": bool,
                      "check_value": (BYTES, None)},
    "exist": {"hash_key": BYTES, "sort_key": BYTES, "exists": bool},
    "monitor": {"monitor": str, "interval": float},
    "ttl": {"hash_key": BYTES, "sort_key": BYTES, "exists": bool, "ttl_seconds": (int, None)},
    "count": {"hash_key": BYTES, "count": int},
    "hash_scan": {"hash_key": BYTES, "kvs": [KV], "truncated": bool},
    "full_scan": {"kvs": [KV], "truncated": bool},
    "count_data": {"table": str, "partitions": [{"pidx": int, "rows": int}], "total_rows": int},
}

SUCCESS = {"command": str, "input": str, "ok": bool, "data": ANY}
FAILURE = {"command": (str, None), "input": (str, None), "ok": bool,
           "error": {"code": str, "message": str, "exit_code": int}}


def check_shape(value: Any, shape: Any, path: str = "$") -> None:
    """Raise AssertionError naming the first place where ``value`` does not have ``shape``."""
    if shape is ANY:
        return
    if isinstance(shape, tuple):
        errors = []
        for alternative in shape:
            try:
                check_shape(value, alternative, path)
                return
            except AssertionError as e:
                errors.append(str(e))
        raise AssertionError(f"{path}: {value!r:.80} matches none of {shape}: {errors}")
    if shape is None:
        assert value is None, f"{path}: expected null, got {value!r:.80}"
    elif isinstance(shape, list):
        assert isinstance(value, list), f"{path}: expected a list, got {value!r:.80}"
        for i, item in enumerate(value):
            check_shape(item, shape[0], f"{path}[{i}]")
    elif isinstance(shape, dict):
        assert isinstance(value, dict), f"{path}: expected an object, got {value!r:.80}"
        for key, sub in shape.items():
            assert key in value, f"{path}: missing key {key!r} (has {sorted(value)})"
            check_shape(value[key], sub, f"{path}.{key}")
    elif shape is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: expected int, got {value!r:.80}"
    else:
        assert isinstance(value, shape), f"{path}: expected {shape.__name__}, got {value!r:.80}"


def check_document(doc: dict) -> None:
    """A success or failure envelope, and the data shape of its command."""
    if doc.get("ok"):
        check_shape(doc, SUCCESS)
        check_shape(doc["data"], DATA[doc["command"]], f"$[{doc['command']}].data")
    else:
        check_shape(doc, FAILURE)
        assert doc["ok"] is False
