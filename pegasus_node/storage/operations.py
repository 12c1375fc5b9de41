"""Applying the write operations of a mutation to the memtable.

Every replica applies the same mutations in the same order and must reach the same state, so nothing here
reads the wall clock: "now" (for expiry) and the timetag are passed in, derived by the engine from the
mutation's ``timestamp_us``. A malformed or unknown op
yields an error *result* (``{"error": code, "message": ...}``) and leaves the table unchanged; it never
raises, because an exception would stop a replay halfway.

Ops are msgpack-able dicts; build them with the ``*_op`` helpers below rather than by hand. Expiry fields
(``expire``) are absolute Unix epoch seconds, 0 = never (the primary turns a client's TTL into one with
``expire_ts_from_ttl``). Writes shipped by duplication carry the source's ``timetag``: they are applied
only where it is newer than the stored one (last writer wins), and keep that timetag.
"""

from __future__ import annotations

import enum
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pegasus_node.base.keys import MAX_HASH_KEY_LEN, encode_key, to_bytes
from pegasus_node.errors import ErrorCode

from .memtable import Memtable, Record

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
_INT64_TEXT = re.compile(rb"[+-]?[0-9]{1,19}")


class CheckType(enum.IntEnum):
    """check_and_set check types, numbered as Pegasus's ``cas_check_type``."""

    CT_NO_CHECK = 0
    CT_VALUE_NOT_EXIST = 1
    CT_VALUE_NOT_EXIST_OR_EMPTY = 2
    CT_VALUE_EXIST = 3
    CT_VALUE_NOT_EMPTY = 4
    CT_VALUE_MATCH_ANYWHERE = 5
    CT_VALUE_MATCH_PREFIX = 6
    CT_VALUE_MATCH_POSTFIX = 7
    CT_VALUE_BYTES_LESS = 8
    CT_VALUE_BYTES_LESS_OR_EQUAL = 9
    CT_VALUE_BYTES_EQUAL = 10
    CT_VALUE_BYTES_GREATER_OR_EQUAL = 11
    CT_VALUE_BYTES_GREATER = 12
    CT_VALUE_INT_LESS = 13
    CT_VALUE_INT_LESS_OR_EQUAL = 14
    CT_VALUE_INT_EQUAL = 15
    CT_VALUE_INT_GREATER_OR_EQUAL = 16
    CT_VALUE_INT_GREATER = 17


_INT_CHECKS = frozenset(range(CheckType.CT_VALUE_INT_LESS, CheckType.CT_VALUE_INT_GREATER + 1))


# ---------------------------------------------------------------------------------------------- builders


def put_op(hash_key: bytes | str, sort_key: bytes | str, value: bytes | str, expire_ts: int = 0,
           *, timetag: int | None = None) -> dict:
    op = {"op": "put", "hk": to_bytes(hash_key), "sk": to_bytes(sort_key), "v": to_bytes(value, "value"),
          "expire": expire_ts}
    return _with_timetag(op, timetag)


def del_op(hash_key: bytes | str, sort_key: bytes | str, *, timetag: int | None = None) -> dict:
    return _with_timetag({"op": "del", "hk": to_bytes(hash_key), "sk": to_bytes(sort_key)}, timetag)


def multi_put_op(hash_key: bytes | str, kvs: Iterable[tuple[bytes | str, bytes | str]], expire_ts: int = 0,
                 *, timetag: int | None = None) -> dict:
    pairs = [[to_bytes(sk), to_bytes(v, "value")] for sk, v in kvs]
    return _with_timetag({"op": "multi_put", "hk": to_bytes(hash_key), "kvs": pairs, "expire": expire_ts}, timetag)


def multi_del_op(hash_key: bytes | str, sort_keys: Iterable[bytes | str], *, timetag: int | None = None) -> dict:
    op = {"op": "multi_del", "hk": to_bytes(hash_key), "sks": [to_bytes(sk) for sk in sort_keys]}
    return _with_timetag(op, timetag)


def incr_op(hash_key: bytes | str, sort_key: bytes | str, increment: int, expire_ts: int = 0) -> dict:
    """``expire_ts``: 0 keeps the record's expiry, -1 clears it, > 0 sets it (see ``incr_expire_from_ttl``)."""
    return {"op": "incr", "hk": to_bytes(hash_key), "sk": to_bytes(sort_key), "by": increment, "expire": expire_ts}


def cas_op(hash_key: bytes | str, check_sort_key: bytes | str, check_type: int, check_operand: bytes | str,
           set_sort_key: bytes | str, set_value: bytes | str, expire_ts: int = 0,
           return_check_value: bool = False) -> dict:
    return {"op": "cas", "hk": to_bytes(hash_key), "check_sk": to_bytes(check_sort_key),
            "check_type": int(check_type), "operand": to_bytes(check_operand, "check operand"),
            "set_sk": to_bytes(set_sort_key), "set_v": to_bytes(set_value, "value"), "expire": expire_ts,
            "return_check_value": bool(return_check_value)}


def expire_ts_from_ttl(ttl_seconds: int, now_s: int) -> int:
    """A client's TTL (0: none) as the absolute expiry that put/multi_put/cas store."""
    return 0 if ttl_seconds <= 0 else now_s + ttl_seconds


def incr_expire_from_ttl(ttl_seconds: int, now_s: int) -> int:
    """incr's TTL (0: keep the record's expiry, -1: clear it, > 0: set it) as incr's ``expire`` field."""
    if ttl_seconds == 0:
        return 0
    return -1 if ttl_seconds < 0 else now_s + ttl_seconds


def is_error(result: dict) -> bool:
    return "error" in result


def _with_timetag(op: dict, timetag: int | None) -> dict:
    if timetag is not None:
        op["timetag"] = timetag
    return op


# ---------------------------------------------------------------------------------------------- applying


class _BadOp(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class _Ctx:
    table: Memtable
    now_s: int
    timetag: int


def apply_writes(table: Memtable, writes: Iterable[Any], *, now_s: int, timetag: int) -> list[dict]:
    """Apply each op in order; returns one result dict per op.

    ``now_s`` decides expiry (a record with 0 < expire_ts <= now_s is absent); ``timetag`` is stored with
    every value written (unless the op carries a duplicated timetag of its own).
    """
    ctx = _Ctx(table, now_s, timetag)
    results = []
    # This loop runs for every op of every committed mutation on every replica: the dispatch is inlined
    # here rather than in a per-op helper to save a call per op.
    for op in writes:
        try:
            if not isinstance(op, dict):
                raise _BadOp(f"a write op must be a map, not {type(op).__name__}")
            handler = _HANDLERS.get(op.get("op"))
            if handler is None:
                raise _BadOp(f"unknown write op {op.get('op')!r}")
            result = handler(ctx, op)
        except _BadOp as exc:
            result = {"error": ErrorCode.ERR_INVALID_PARAMETERS, "message": exc.message}
        except Exception as exc:  # a bug, but the same on every replica: report it rather than stop the replay
            result = {"error": ErrorCode.ERR_UNKNOWN, "message": f"{type(exc).__name__}: {exc}"}
        results.append(result)
    return results


_BYTES_LIKE = (bytes, bytearray, memoryview)


def _field_bytes(op: dict, name: str, default: bytes | None = None) -> bytes:
    # bytearray and memoryview are accepted because msgpack turns them into bytes: the primary applying the
    # op in memory and a replica applying it after the wire or the WAL must reach the same verdict.
    value = op.get(name, default)
    if not isinstance(value, _BYTES_LIKE):
        raise _BadOp(f"{op.get('op')}: field {name!r} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _field_int(op: dict, name: str, default: int | None = None) -> int:
    value = op.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadOp(f"{op.get('op')}: field {name!r} must be an integer, got {type(value).__name__}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise _BadOp(f"{op.get('op')}: field {name!r} is out of the int64 range")
    return value


def _field_expire(op: dict) -> int:
    expire = _field_int(op, "expire", 0)
    if expire < 0:
        raise _BadOp(f"{op.get('op')}: field 'expire' must be >= 0 (absolute epoch seconds, 0 = never)")
    return expire


def _key(op: dict, hash_key: bytes, sort_key: bytes) -> bytes:
    if len(hash_key) > MAX_HASH_KEY_LEN:
        raise _BadOp(f"{op.get('op')}: hash key is {len(hash_key)} bytes; the limit is {MAX_HASH_KEY_LEN}")
    return encode_key(hash_key, sort_key)


def _dup_timetag(op: dict) -> int | None:
    """The source timetag of a write shipped by duplication, or None for a local write."""
    if "timetag" not in op:
        return None
    timetag = _field_int(op, "timetag")
    if timetag < 0:
        raise _BadOp(f"{op.get('op')}: field 'timetag' must be >= 0")
    return timetag


def _wins(ctx: _Ctx, key: bytes, dup_timetag: int | None) -> bool:
    """Whether a write to ``key`` takes effect: always for local writes, if newer for duplicated ones."""
    if dup_timetag is None:
        return True
    current = ctx.table.get_live(key, ctx.now_s)
    return current is None or dup_timetag > current.timetag


def _parse_int64(raw: bytes) -> int | None:
    if not _INT64_TEXT.fullmatch(raw):
        return None
    number = int(raw)
    return number if INT64_MIN <= number <= INT64_MAX else None


def _plain_key(op: dict) -> bytes | None:
    """The storage key of a put/del in the common case, or None when the general path must decide.

    The common case (bytes keys, a hash key within the limit, no duplicated timetag) is what the builders
    and msgpack produce, and its key fields cannot be invalid, so it skips the general path's per-field
    checks. Anything else (bytearray, wrong types, an oversize hash key, a timetag) returns None and goes
    through the general path, which alone produces error messages, so every replica, whether it applies
    the op from memory or after msgpack, reaches the same verdict.
    """
    hash_key, sort_key = op.get("hk"), op.get("sk")
    if (type(hash_key) is bytes and type(sort_key) is bytes and len(hash_key) <= MAX_HASH_KEY_LEN
            and "timetag" not in op):
        return encode_key(hash_key, sort_key)
    return None


def _op_put(ctx: _Ctx, op: dict) -> dict:
    # The common case (see _plain_key); the general path below decides everything else.
    key, value, expire = _plain_key(op), op.get("v"), op.get("expire", 0)
    if key is not None and type(value) is bytes and type(expire) is int and 0 <= expire <= INT64_MAX:
        ctx.table.put(key, Record(value, expire, ctx.timetag))
        return {}
    key = _key(op, _field_bytes(op, "hk"), _field_bytes(op, "sk"))
    value, expire, dup = _field_bytes(op, "v"), _field_expire(op), _dup_timetag(op)
    if _wins(ctx, key, dup):
        ctx.table.put(key, Record(value, expire, ctx.timetag if dup is None else dup))
    return {}


def _op_del(ctx: _Ctx, op: dict) -> dict:
    key = _plain_key(op)
    if key is not None:  # the common case: a local delete always takes effect
        ctx.table.delete(key)
        return {}
    key = _key(op, _field_bytes(op, "hk"), _field_bytes(op, "sk"))
    if _wins(ctx, key, _dup_timetag(op)):
        ctx.table.delete(key)
    return {}


def _op_multi_put(ctx: _Ctx, op: dict) -> dict:
    hash_key, expire, dup = _field_bytes(op, "hk"), _field_expire(op), _dup_timetag(op)
    kvs = op.get("kvs")
    if not isinstance(kvs, (list, tuple)) or not kvs:
        raise _BadOp("multi_put: field 'kvs' must be a non-empty list of [sort_key, value]")
    records = []
    for pair in kvs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(x, _BYTES_LIKE) for x in pair)):
            raise _BadOp("multi_put: every entry of 'kvs' must be [sort_key: bytes, value: bytes]")
        records.append((_key(op, hash_key, bytes(pair[0])), bytes(pair[1])))
    for key, value in records:
        if _wins(ctx, key, dup):
            ctx.table.put(key, Record(value, expire, ctx.timetag if dup is None else dup))
    return {}


def _op_multi_del(ctx: _Ctx, op: dict) -> dict:
    hash_key, dup = _field_bytes(op, "hk"), _dup_timetag(op)
    sort_keys = op.get("sks")
    if not isinstance(sort_keys, (list, tuple)) or not sort_keys:
        raise _BadOp("multi_del: field 'sks' must be a non-empty list of sort keys")
    if not all(isinstance(sk, _BYTES_LIKE) for sk in sort_keys):
        raise _BadOp("multi_del: every sort key in 'sks' must be bytes")
    count = 0
    for key in [_key(op, hash_key, bytes(sk)) for sk in sort_keys]:
        live = ctx.table.get_live(key, ctx.now_s) is not None
        if _wins(ctx, key, dup) and ctx.table.delete(key) is not None and live:
            count += 1
    return {"count": count}


def _op_incr(ctx: _Ctx, op: dict) -> dict:
    key = _key(op, _field_bytes(op, "hk"), _field_bytes(op, "sk"))
    increment, expire = _field_int(op, "by"), _field_int(op, "expire", 0)
    current = ctx.table.get_live(key, ctx.now_s)
    base, old_expire = 0, 0
    if current is not None:
        old_expire = current.expire_ts
        if current.value:  # Pegasus counts an empty value as 0
            parsed = _parse_int64(current.value)
            if parsed is None:
                raise _BadOp(f"incr: the stored value {current.value[:40]!r} is not a decimal int64")
            base = parsed
    new_value = base + increment
    if not INT64_MIN <= new_value <= INT64_MAX:
        raise _BadOp(f"incr: {base} + {increment} overflows int64")
    new_expire = old_expire if expire == 0 else (0 if expire < 0 else expire)
    ctx.table.put(key, Record(str(new_value).encode(), new_expire, ctx.timetag))
    return {"value": new_value}


def _check_passes(check_type: CheckType, value: bytes | None, operand: bytes) -> bool:
    """Pegasus's check semantics; ``value`` is None when the checked record is absent."""
    if check_type == CheckType.CT_NO_CHECK:
        return True
    if check_type == CheckType.CT_VALUE_NOT_EXIST:
        return value is None
    if check_type == CheckType.CT_VALUE_NOT_EXIST_OR_EMPTY:
        return value is None or value == b""
    if value is None:
        return False
    if check_type == CheckType.CT_VALUE_EXIST:
        return True
    if check_type == CheckType.CT_VALUE_NOT_EMPTY:
        return value != b""
    if check_type == CheckType.CT_VALUE_MATCH_ANYWHERE:
        return operand in value
    if check_type == CheckType.CT_VALUE_MATCH_PREFIX:
        return value.startswith(operand)
    if check_type == CheckType.CT_VALUE_MATCH_POSTFIX:
        return value.endswith(operand)
    if check_type in _INT_CHECKS:
        left, right = _parse_int64(value), _parse_int64(operand)
        if left is None:
            raise _BadOp(f"cas: the check value {value[:40]!r} is not a decimal int64")
        assert right is not None  # the operand was validated before
    else:
        left, right = value, operand
    return _COMPARISONS[check_type](left, right)


_COMPARISONS: dict[int, Callable[[Any, Any], bool]] = {
    CheckType.CT_VALUE_BYTES_LESS: operator.lt,
    CheckType.CT_VALUE_BYTES_LESS_OR_EQUAL: operator.le,
    CheckType.CT_VALUE_BYTES_EQUAL: operator.eq,
    CheckType.CT_VALUE_BYTES_GREATER_OR_EQUAL: operator.ge,
    CheckType.CT_VALUE_BYTES_GREATER: operator.gt,
    CheckType.CT_VALUE_INT_LESS: operator.lt,
    CheckType.CT_VALUE_INT_LESS_OR_EQUAL: operator.le,
    CheckType.CT_VALUE_INT_EQUAL: operator.eq,
    CheckType.CT_VALUE_INT_GREATER_OR_EQUAL: operator.ge,
    CheckType.CT_VALUE_INT_GREATER: operator.gt,
}


def _op_cas(ctx: _Ctx, op: dict) -> dict:
    hash_key = _field_bytes(op, "hk")
    check_key = _key(op, hash_key, _field_bytes(op, "check_sk"))
    set_key = _key(op, hash_key, _field_bytes(op, "set_sk"))
    raw_type = _field_int(op, "check_type")
    try:
        check_type = CheckType(raw_type)
    except ValueError:
        raise _BadOp(f"cas: unknown check_type {raw_type}") from None
    operand, set_value = _field_bytes(op, "operand", b""), _field_bytes(op, "set_v")
    expire = _field_expire(op)
    return_check_value = op.get("return_check_value", False)
    if not isinstance(return_check_value, bool):
        raise _BadOp("cas: field 'return_check_value' must be a boolean")
    if check_type in _INT_CHECKS and _parse_int64(operand) is None:
        raise _BadOp(f"cas: check_operand {operand[:40]!r} is not a decimal int64, as {check_type.name} needs")
    current = ctx.table.get_live(check_key, ctx.now_s)
    check_value = None if current is None else current.value
    passed = _check_passes(check_type, check_value, operand)
    if passed:
        ctx.table.put(set_key, Record(set_value, expire, ctx.timetag))
    return {
        "set_succeed": passed,
        "check_value_exist": return_check_value and check_value is not None,
        "check_value": check_value if return_check_value else None,
    }


_HANDLERS: dict[str, Callable[[_Ctx, dict], dict]] = {
    "put": _op_put,
    "del": _op_del,
    "multi_put": _op_multi_put,
    "multi_del": _op_multi_del,
    "incr": _op_incr,
    "cas": _op_cas,
}
