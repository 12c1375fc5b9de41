"""The Pegasus data model's key layout and partition hash.

A record is ``(hash_key, sort_key) -> value``. The storage key is ``[u16 big-endian len(hash_key)]
[hash_key][sort_key]``, so every sort key of one hash key is contiguous and ordered, which is what makes
hash-key scans a plain range scan.

Partitioning uses the CRC-64 that rDSN/Pegasus uses (``dsn::utils::crc64_calc``): reflected polynomial
0x9a6c9329ac4bc9b5, initial value ~0, final complement (the same parameters as CRC-64/NVME). The partition
is ``crc64(hash_key) mod partition_count`` with the CRC read as an unsigned 64-bit number, as the Pegasus
Java client computes it, so a pegasus-py client and a Pegasus client agree on where a key lives.
"""

from __future__ import annotations

import struct

MAX_HASH_KEY_LEN = 0xFFFF

_CRC64_POLY = 0x9A6C9329AC4BC9B5
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC64_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC64_TABLE = _make_table()


def crc64(data: bytes) -> int:
    crc = _MASK64
    table = _CRC64_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK64


def partition_index(hash_key: bytes, partition_count: int) -> int:
    return crc64(hash_key) % partition_count


def to_bytes(value: bytes | str, what: str = "key") -> bytes:
    """Keys and values are bytes; str is accepted and encoded as UTF-8."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


_U16 = struct.Struct(">H")  # precompiled: encode_key runs for every write op applied


def encode_key(hash_key: bytes, sort_key: bytes) -> bytes:
    if len(hash_key) > MAX_HASH_KEY_LEN:
        raise ValueError(f"hash key is {len(hash_key)} bytes; the limit is {MAX_HASH_KEY_LEN}")
    return _U16.pack(len(hash_key)) + hash_key + sort_key


def decode_key(key: bytes) -> tuple[bytes, bytes]:
    (hk_len,) = struct.unpack_from(">H", key)
    return key[2 : 2 + hk_len], key[2 + hk_len :]


def hash_key_prefix(hash_key: bytes) -> bytes:
    """Every storage key of this hash key starts with these bytes."""
    return struct.pack(">H", len(hash_key)) + hash_key


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])
