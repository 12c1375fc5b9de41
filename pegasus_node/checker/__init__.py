"""Linearizability checking of recorded client histories (Wing & Gong search with Lowe's memoization, as in
Porcupine), with key-value and compare-and-set register models and readers for Jepsen histories.

Recording and checking a key-value history::

    rec = Recorder(clock=sim.now)                 # or the default time.monotonic
    t = rec.invoke(client_id, kv_set((hash_key, sort_key), value))
    rec.complete(t, None)                         # acknowledged; rec.unknown(t) if it timed out
    t = rec.invoke(client_id, kv_get((hash_key, sort_key)))
    rec.complete(t, value_or_None)
    t = rec.invoke(client_id, kv_cas((hash_key, sort_key), expected_or_None, new_value))
    rec.complete(t, swapped)                      # True / False
    result = check(rec.history(), KvModel(), timeout=60)
    assert result.ok, result.explanation          # verdict OK, ILLEGAL or UNKNOWN (timed out)

Writes that definitely failed are left out of the history (they had no effect); reads that failed or timed
out are left out or marked unknown (they constrain nothing).
"""

from pegasus_node.checker.history import UNKNOWN, HistoryError, Operation, Recorder
from pegasus_node.checker.jepsen import ETCD_MODEL, KV_MODEL, parse_etcd_log, parse_jepsen_kv_edn
from pegasus_node.checker.linearizability import CheckResult, Verdict, check
from pegasus_node.checker.models import (
    KvModel,
    KvOp,
    Model,
    RegisterModel,
    kv_append,
    kv_cas,
    kv_delete,
    kv_get,
    kv_set,
)

__all__ = [
    "UNKNOWN",
    "CheckResult",
    "ETCD_MODEL",
    "HistoryError",
    "KV_MODEL",
    "KvModel",
    "KvOp",
    "Model",
    "Operation",
    "Recorder",
    "RegisterModel",
    "Verdict",
    "check",
    "kv_append",
    "kv_cas",
    "kv_delete",
    "kv_get",
    "kv_set",
    "parse_etcd_log",
    "parse_jepsen_kv_edn",
]
