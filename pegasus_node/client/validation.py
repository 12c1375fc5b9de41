"""Argument checks done before any I/O, so that a bad call fails at once with a clear error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pegasus_node.base.keys import MAX_HASH_KEY_LEN, to_bytes
from pegasus_node.client.errors import (
    InvalidArgumentError,
    InvalidKeyError,
    InvalidTtlError,
    InvalidValueError,
    ValueTooLargeError,
)

DEFAULT_MAX_VALUE_BYTES = 1 << 20
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


# hash_key_arg, sort_key_arg, value_arg and ttl_arg run for every operation: each first takes the common
# case (bytes of an acceptable size; a plain int in range) with no further call, anything else the general
# path, which raises the errors.


def hash_key_arg(value: Any) -> bytes:
    if type(value) is bytes and 0 < len(value) <= MAX_HASH_KEY_LEN:
        return value
    try:
        key = to_bytes(value, "hash key")
    except TypeError as e:
        raise InvalidKeyError(str(e)) from None
    if not key:
        raise InvalidKeyError("hash key must not be empty")
    if len(key) > MAX_HASH_KEY_LEN:
        raise InvalidKeyError(f"hash key is {len(key)} bytes; the limit is {MAX_HASH_KEY_LEN}")
    return key


def sort_key_arg(value: Any, what: str = "sort key") -> bytes:
    if type(value) is bytes:
        return value
    try:
        return to_bytes(value, what)
    except TypeError as e:
        raise InvalidKeyError(str(e)) from None


def sort_keys_arg(values: Any) -> list[bytes]:
    if isinstance(values, (bytes, str, bytearray, memoryview)) or not isinstance(values, Iterable):
        raise InvalidKeyError("sort keys must be a list (or other iterable) of bytes or str")
    keys = [sort_key_arg(v) for v in values]
    if not keys:
        raise InvalidKeyError("sort keys must not be empty")
    return keys


def value_arg(value: Any, max_value_bytes: int, what: str = "value") -> bytes:
    if type(value) is bytes and len(value) <= max_value_bytes:
        return value
    try:
        data = to_bytes(value, what)
    except TypeError as e:
        raise InvalidValueError(str(e)) from None
    if len(data) > max_value_bytes:
        raise ValueTooLargeError(f"{what} is {len(data)} bytes; the limit is {max_value_bytes}")
    return data


def kvs_arg(kvs: Any, max_value_bytes: int) -> list[tuple[bytes, bytes]]:
    """``{sort_key: value}`` or an iterable of ``(sort_key, value)`` pairs, non-empty."""
    if isinstance(kvs, Mapping):
        items: Iterable[Any] = kvs.items()
    elif isinstance(kvs, Iterable) and not isinstance(kvs, (bytes, str, bytearray, memoryview)):
        items = kvs
    else:
        raise InvalidArgumentError("kvs must be a dict {sort_key: value} or a list of (sort_key, value) pairs")
    pairs = []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InvalidArgumentError(f"each kvs item must be a (sort_key, value) pair, got {item!r:.80}")
        pairs.append((sort_key_arg(item[0]), value_arg(item[1], max_value_bytes)))
    if not pairs:
        raise InvalidArgumentError("kvs must not be empty")
    return pairs


def ttl_arg(value: Any, *, allow_clear: bool = False) -> int:
    """Seconds, 0 for no expiry; ``allow_clear`` also accepts -1 (incr: clear the TTL)."""
    if type(value) is int and 0 <= value <= INT64_MAX:  # the common case (a bool is not of type int)
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTtlError(f"ttl_seconds must be an int, not {type(value).__name__}")
    lowest = -1 if allow_clear else 0
    if value < lowest:
        allowed = "-1 (clear), 0 (keep) or positive" if allow_clear else "0 (no expiry) or positive"
        raise InvalidTtlError(f"ttl_seconds must be {allowed}, got {value}")
    if value > INT64_MAX:
        raise InvalidTtlError(f"ttl_seconds {value} is too large")
    return value


def int_arg(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an int, not {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{name} must be <= {maximum}, got {value}")
    return value


def bool_arg(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def timeout_arg(value: Any, default: float) -> float:
    """An operation timeout in seconds; None means ``default``."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise InvalidArgumentError(f"timeout must be a positive number of seconds, got {value!r}")
    return float(value)


def parse_meta_list(meta_list: Any) -> list[str]:
    """``"h1:p1,h2:p2"`` or a list of ``"host:port"`` strings."""
    if isinstance(meta_list, str):
        entries = [e.strip() for e in meta_list.split(",")]
    elif isinstance(meta_list, Iterable) and not isinstance(meta_list, (bytes, bytearray)):
        entries = [e.strip() if isinstance(e, str) else e for e in meta_list]
    else:
        raise InvalidArgumentError("meta_list must be 'host:port,host:port' or a list of 'host:port'")
    addresses = []
    for entry in entries:
        if entry == "":
            continue
        addresses.append(address_arg(entry, "meta server address"))
    if not addresses:
        raise InvalidArgumentError("meta_list names no meta server")
    return list(dict.fromkeys(addresses))


def address_arg(value: Any, what: str = "address") -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a 'host:port' string, not {type(value).__name__}")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgumentError(f"{what} {value!r} is not 'host:port'")
    return value
