"""The operations the runner drives: KV workloads on a client table, and echo calls on the transport.

Key layout of the KV workloads: operation ``i`` uses hash key ``bench:<i mod K>`` and sort key
``s<i div K>`` (K = ``--hash-keys``), zero-padded, so a ``get`` run with the same ``--ops`` and
``--hash-keys`` reads exactly the keys that a ``set`` run wrote. Values are a fixed pattern of
``--value-size`` bytes, so reads can check what they get back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from pegasus_node.bench.runner import NOT_FOUND, BenchFailure, Operation

KV_WORKLOADS = ("set", "get", "mixed", "scan")
ECHO_METHOD = "echo"


@dataclass(frozen=True)
class KeySpace:
    hash_keys: int

    def key(self, i: int) -> tuple[bytes, bytes]:
        return b"bench:%08d" % (i % self.hash_keys), b"s%010d" % (i // self.hash_keys)

    def hash_key(self, i: int) -> bytes:
        return self.key(i)[0]


def make_value(size: int) -> bytes:
    pattern = b"pegasus-bench-0123456789abcdef|"
    return (pattern * (size // len(pattern) + 1))[:size]


def set_op(table: Any, keys: KeySpace, value: bytes) -> Operation:
    def op(i: int) -> Deferred:
        hash_key, sort_key = keys.key(i)
        return table.set(hash_key, sort_key, value)

    return op


def get_op(table: Any, keys: KeySpace, value: bytes) -> Operation:
    def check(got: bytes | None) -> str | None:
        if got is None:
            return NOT_FOUND
        if got != value:
            raise BenchFailure("WRONG_VALUE", f"read {len(got)} bytes that are not what the set workload writes")
        return None

    def op(i: int) -> Deferred:
        hash_key, sort_key = keys.key(i)
        return table.get(hash_key, sort_key).addCallback(check)

    return op


def mixed_op(table: Any, keys: KeySpace, value: bytes, read_ratio: float, seed: int = 0) -> Operation:
    rng = random.Random(seed)
    read, write = get_op(table, keys, value), set_op(table, keys, value)

    def op(i: int) -> Deferred:
        return read(i) if rng.random() < read_ratio else write(i)

    return op


def scan_op(table: Any, keys: KeySpace, batch_size: int) -> Operation:
    """One scan batch (one ``rrdb.scan``) over the sort keys of hash key ``i mod K``."""

    def check(batch: list) -> str | None:
        return None if batch else NOT_FOUND

    def op(i: int) -> Deferred:
        return table.get_scanner(keys.hash_key(i), batch_size=batch_size).next_batch().addCallback(check)

    return op


def kv_operation(
    workload: str, table: Any, keys: KeySpace, value: bytes, *, read_ratio: float = 0.5, scan_batch: int = 100
) -> Operation:
    if workload == "set":
        return set_op(table, keys, value)
    if workload == "get":
        return get_op(table, keys, value)
    if workload == "mixed":
        return mixed_op(table, keys, value, read_ratio)
    if workload == "scan":
        return scan_op(table, keys, scan_batch)
    raise ValueError(f"unknown workload {workload!r}; choose from {', '.join(KV_WORKLOADS)}")


def echo_op(pool: Any, address: str | list[str], value: bytes, timeout: float) -> Operation:
    """A msgpack echo call carrying ``value``; checks that the same bytes come back.

    Given several addresses, operation ``i`` goes to address ``i mod n``: the same fan-out over servers as a
    KV workload over a table's partitions, so the two compare fairly."""
    body = {"payload": value}
    addresses = [address] if isinstance(address, str) else list(address)

    def check(reply: Any) -> None:
        if not isinstance(reply, dict) or reply.get("payload") != value:
            raise BenchFailure("WRONG_ECHO", "the echo reply is not the request body")
        return None

    def op(i: int) -> Deferred:
        return pool.call(addresses[i % len(addresses)], ECHO_METHOD, body, timeout).addCallback(check)

    return op


def echo_handler(body: Any, ctx: Any) -> Any:
    return body
