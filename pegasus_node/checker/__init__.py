"""Linearizability checking of recorded client histories (Wing & Gong search with Lowe's memoization, as in
Porcupine), with key-value and compare-and-set register models and readers for Jepsen histories."""

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
