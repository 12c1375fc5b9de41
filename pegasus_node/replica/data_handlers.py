"""The ``rrdb.*`` data methods: decode a request body, route it to the hosted replica, shape the reply.

Write methods become storage operations (``pegasus_node/storage/operations.py`` kinds) submitted to the
replica's write pipeline; read methods read the replica's engine directly. TTLs arrive relative and are
turned into absolute expiry times here, on the primary, so every replica applies the same value.
"""

from __future__ import annotations

import time

from twisted.internet import defer

from pegasus_node.duplication.entry import SHIPPABLE_OPS
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc import expect

# Field maps built once: the put and get handlers run for every request.
GPID = {"gpid": list}
KEY = {"gpid": list, "hash_key": bytes, "sort_key": bytes}
PUT = {**KEY, "value": bytes}
TTL = {"ttl_seconds": int}
# backup_request: a secondary may answer from its possibly stale state (seed 000). follower_read: a secondary
# answers once it has applied its primary's commit point (linearizable, replication/follower_reads.py).
READ_OPTIONS = {"backup_request": bool, "follower_read": bool}


def expire_at(ttl_seconds: int, *, allow_clear: bool = False) -> int:
    if ttl_seconds == 0:
        return 0
    if ttl_seconds == -1 and allow_clear:
        return -1
    if ttl_seconds < 0:
        raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, f"ttl_seconds must be >= 0, got {ttl_seconds}")
    return int(time.time()) + ttl_seconds


def _reply_fields(result: dict, fields: tuple[str, ...]) -> dict:
    """A write's reply: the storage engine's error as a PegasusError, or the named fields of its result."""
    if result.get("error"):
        raise PegasusError(result["error"], result.get("message", ""))
    return {name: result[name] for name in fields}


DECREE = ("decree",)


class DataHandlers:
    """Binds the rrdb methods to a ``lookup(gpid) -> PartitionReplica`` function."""

    WRITES = ("put", "remove", "multi_put", "multi_remove", "incr", "check_and_set", "duplicate")
    READS = ("get", "multi_get", "sortkey_count", "ttl", "exist", "scan")

    def __init__(self, lookup, max_value_bytes: int) -> None:
        self.lookup = lookup
        self.max_value_bytes = max_value_bytes
        # Totals since start; the monitor turns reads and writes into ops/s between two polls. follower_reads:
        # the reads among them that this server served as a secondary, linearizably.
        self.counters = {"reads": 0, "writes": 0, "follower_reads": 0}

    def register(self, server) -> None:
        for kind, names in (("writes", self.WRITES), ("reads", self.READS)):
            for name in names:
                server.register(f"rrdb.{name}", self._counted(kind, getattr(self, name)))

    def _counted(self, kind: str, handler):
        counters = self.counters

        def handle(body, ctx):
            counters[kind] += 1
            return handler(body, ctx)

        return handle

    def _check_value(self, value: bytes) -> None:
        if len(value) > self.max_value_bytes:
            raise PegasusError(ErrorCode.ERR_VALUE_TOO_LARGE,
                               f"value is {len(value)} bytes; the limit is {self.max_value_bytes}")

    def _write(self, body: dict, op: dict, fields: tuple[str, ...] = DECREE) -> defer.Deferred:
        return self.lookup(body["gpid"]).submit(op).addCallback(_reply_fields, fields)

    def _read(self, body: dict, read):
        """``read(engine)`` -> the reply: at once, or for a follower read once this replica may serve it."""
        replica = self.lookup(body["gpid"])
        if body.get("follower_read"):
            return replica.follower_read().addCallback(self._served_follower_read, read)
        return read(replica.readable_engine(body.get("backup_request", False)))

    def _served_follower_read(self, engine, read):
        self.counters["follower_reads"] += 1
        return read(engine)

    # ----- writes -----

    def put(self, body, ctx):
        b = expect(body, PUT, optional=TTL)
        self._check_value(b["value"])
        op = {"op": "put", "hk": b["hash_key"], "sk": b["sort_key"], "v": b["value"],
              "expire": expire_at(b.get("ttl_seconds", 0))}
        return self._write(b, op)

    def remove(self, body, ctx):
        b = expect(body, KEY)
        op = {"op": "del", "hk": b["hash_key"], "sk": b["sort_key"]}
        return self._write(b, op)

    def multi_put(self, body, ctx):
        b = expect(body, {**GPID, "hash_key": bytes, "kvs": list}, optional=TTL)
        kvs = []
        for pair in b["kvs"]:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, bytes) for x in pair)):
                raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, "kvs must be a list of [sort_key, value] bytes pairs")
            self._check_value(pair[1])
            kvs.append([pair[0], pair[1]])
        if not kvs:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, "multi_put needs at least one sort key")
        op = {"op": "multi_put", "hk": b["hash_key"], "kvs": kvs, "expire": expire_at(b.get("ttl_seconds", 0))}
        return self._write(b, op)

    def multi_remove(self, body, ctx):
        b = expect(body, {**GPID, "hash_key": bytes, "sort_keys": list})
        if not all(isinstance(sk, bytes) for sk in b["sort_keys"]):
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, "sort_keys must be a list of bytes")
        op = {"op": "multi_del", "hk": b["hash_key"], "sks": list(b["sort_keys"])}
        return self._write(b, op, ("decree", "count"))

    def incr(self, body, ctx):
        b = expect(body, {**KEY, "increment": int}, optional=TTL)
        op = {"op": "incr", "hk": b["hash_key"], "sk": b["sort_key"], "by": b["increment"],
              "expire": expire_at(b.get("ttl_seconds", 0), allow_clear=True)}
        return self._write(b, op, ("decree", "value"))

    def check_and_set(self, body, ctx):
        b = expect(body, {**GPID, "hash_key": bytes, "check_sort_key": bytes, "check_type": int,
                          "check_operand": bytes, "set_sort_key": bytes, "set_value": bytes},
                   optional={"ttl_seconds": int, "return_check_value": bool})
        self._check_value(b["set_value"])
        op = {"op": "cas", "hk": b["hash_key"], "check_sk": b["check_sort_key"], "check_type": b["check_type"],
              "operand": b["check_operand"], "set_sk": b["set_sort_key"], "set_v": b["set_value"],
              "expire": expire_at(b.get("ttl_seconds", 0)), "return_check_value": b.get("return_check_value", False)}
        return self._write(b, op, ("decree", "set_succeed", "check_value_exist", "check_value"))

    def duplicate(self, body, ctx):
        """Writes another cluster's duplication shipped here (duplication/duplicator.py), all of this partition,
        in order: idempotent storage ops with their source timetags, each applied only over an older one, and
        never shipped on from here. Submitted in one turn, they go in one mutation (or a few)."""
        b = expect(body, {**GPID, "hash_key": bytes, "ops": list})
        ops = b["ops"]
        if not ops or not all(isinstance(op, dict) and op.get("op") in SHIPPABLE_OPS and type(op.get("timetag")) is int
                              and isinstance(op.get("hk"), bytes) for op in ops):
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS,
                               "duplicate: ops must be puts, dels, multi_puts or multi_dels, each with its hash key "
                               "and an int timetag")
        for op in ops:
            values = [op.get("v")] if op["op"] == "put" else [p[1] for p in op.get("kvs", ()) if len(p) == 2]
            for value in values:
                if isinstance(value, bytes):
                    self._check_value(value)
        replica = self.lookup(b["gpid"])
        applied = [replica.submit(dict(op)).addCallback(_reply_fields, DECREE) for op in ops]
        return defer.gatherResults(applied, consumeErrors=True).addCallbacks(
            lambda results: {"count": len(results)}, lambda failure: failure.value.subFailure)

    # ----- reads -----

    def get(self, body, ctx):
        b = expect(body, KEY, optional=READ_OPTIONS)
        return self._read(b, lambda engine: {"value": engine.get(b["hash_key"], b["sort_key"])})

    def exist(self, body, ctx):
        b = expect(body, KEY, optional=READ_OPTIONS)
        return self._read(b, lambda engine: {"exists": engine.exist(b["hash_key"], b["sort_key"])})

    def ttl(self, body, ctx):
        b = expect(body, KEY, optional=READ_OPTIONS)

        def read(engine) -> dict:
            ttl = engine.ttl(b["hash_key"], b["sort_key"])
            return {"exists": ttl is not None, "ttl_seconds": -1 if ttl is None else ttl}

        return self._read(b, read)

    def sortkey_count(self, body, ctx):
        b = expect(body, {**GPID, "hash_key": bytes}, optional=READ_OPTIONS)
        return self._read(b, lambda engine: {"count": engine.sortkey_count(b["hash_key"])})

    def multi_get(self, body, ctx):
        b = expect(body, {**GPID, "hash_key": bytes},
                   optional={"sort_keys": list, "start_sort_key": bytes, "stop_sort_key": bytes,
                             "start_inclusive": bool, "stop_inclusive": bool, "max_kv_count": int,
                             "max_kv_size": int, "no_value": bool, **READ_OPTIONS})
        sort_keys = b.get("sort_keys")
        if sort_keys is not None and not all(isinstance(sk, bytes) for sk in sort_keys):
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, "sort_keys must be a list of bytes")

        def read(engine) -> dict:
            kvs, complete = engine.multi_get(
                b["hash_key"], sort_keys or None,
                start_sk=b.get("start_sort_key", b""), stop_sk=b.get("stop_sort_key", b""),
                start_inclusive=b.get("start_inclusive", True), stop_inclusive=b.get("stop_inclusive", False),
                max_kv_count=b.get("max_kv_count", -1), max_kv_size=b.get("max_kv_size", -1),
                no_value=b.get("no_value", False))
            return {"kvs": [[sk, v] for sk, v in kvs], "complete": complete}

        return self._read(b, read)

    def scan(self, body, ctx):
        b = expect(body, {**GPID, "start_key": bytes, "stop_key": bytes},
                   optional={"start_inclusive": bool, "stop_inclusive": bool, "batch_size": int,
                             "no_value": bool, **READ_OPTIONS})
        batch_size = b.get("batch_size", 1000)
        if not 1 <= batch_size <= 100_000:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, f"batch_size must be in [1, 100000], got {batch_size}")

        def read(engine) -> dict:
            kvs, next_key = engine.scan(
                b["start_key"], b["stop_key"], b.get("start_inclusive", True), b.get("stop_inclusive", False),
                batch_size, no_value=b.get("no_value", False))
            return {"kvs": [[hk, sk, v] for hk, sk, v in kvs], "next_start_key": next_key}

        return self._read(b, read)
