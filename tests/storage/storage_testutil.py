"""Helpers shared by the storage tests."""

from __future__ import annotations

from pathlib import Path

from pegasus_node.storage import Mutation, StorageEngine

T0 = 1_700_000_000  # epoch seconds used as "now" by the tests


def ts_us(offset_s: float = 0) -> int:
    return int((T0 + offset_s) * 1_000_000)


def mut(decree: int, *writes: dict, ballot: int = 1, at: float = 0) -> Mutation:
    return Mutation(ballot, decree, decree - 1, ts_us(at), tuple(writes))


def open_engine(path: Path, **options) -> StorageEngine:
    options.setdefault("fsync", False)
    return StorageEngine.open(path, **options)


def everything(engine: StorageEngine, now: float = T0) -> list[tuple[bytes, bytes, bytes]]:
    kvs, next_key = engine.scan(b"", b"", True, False, 1 << 30, now=now)
    assert next_key is None
    return kvs


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
