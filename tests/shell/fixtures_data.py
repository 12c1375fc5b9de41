"""Fixed command results (as the commands return them) for the golden and schema tests."""

from __future__ import annotations

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC

TABLE_ROW = {"app_id": 2, "name": "t1", "status": "AVAILABLE", "partition_count": 4, "replica_count": 3,
             "create_time": T0, "drop_time": 0, "expire_time": 0, "envs_count": 0}
DROPPED_ROW = {**TABLE_ROW, "app_id": 3, "name": "old", "status": "DROPPED", "drop_time": T0 + 60,
               "expire_time": T0 + 60 + 7 * 86400}

PARTITIONS = [
    {"pidx": 0, "ballot": 3, "primary": "127.0.0.1:34801", "secondaries": ["127.0.0.1:34802", "127.0.0.1:34803"],
     "learners": [], "last_committed_decree": 17, "health": "healthy"},
    {"pidx": 1, "ballot": 5, "primary": "127.0.0.1:34802", "secondaries": ["127.0.0.1:34803"],
     "learners": ["127.0.0.1:34801"], "last_committed_decree": 9, "health": "unhealthy"},
    {"pidx": 2, "ballot": 4, "primary": "", "secondaries": [], "learners": [], "last_committed_decree": 0,
     "health": "read_unhealthy"},
]

RESULTS: dict[str, dict] = {
    "ls": {"tables": [{**TABLE_ROW, "fully_healthy": 4, "unhealthy": 0, "write_unhealthy": 0, "read_unhealthy": 0},
                      {**DROPPED_ROW, "fully_healthy": None, "unhealthy": None, "write_unhealthy": None,
                       "read_unhealthy": None}],
           "detail": True},
    "use": {"table": "t1", "app_id": 2, "partition_count": 4},
    "cc": {"cluster": "onebox", "meta_servers": ["127.0.0.1:34601"]},
    "create": {"table": TABLE_ROW, "healthy_partitions": 4, "waited": True},
    "drop": {"table": {**TABLE_ROW, "status": "DROPPED", "drop_time": T0 + 60, "expire_time": T0 + 120}},
    "recall": {"table": TABLE_ROW},
    "nodes": {"nodes": [
        {"address": "127.0.0.1:34801", "status": "alive", "replica_count": 6, "primary_count": 2,
         "secondary_count": 4, "last_beacon_age_ms": 310, "lease_remaining_ms": 3690},
        {"address": "127.0.0.1:34802", "status": "unalive", "replica_count": 0, "primary_count": 0,
         "secondary_count": 0, "last_beacon_age_ms": 9000, "lease_remaining_ms": 0}],
        "summary": {"total_node_count": 2, "alive_node_count": 1, "unalive_node_count": 1}, "detail": True},
    "partitions": {"table": "t1", "app_id": 2, "partition_count": 3, "replica_count": 3, "partitions": PARTITIONS,
                   "summary": {"fully_healthy": 1, "unhealthy": 2, "write_unhealthy": 1, "read_unhealthy": 1}},
    "cluster-info": {"cluster": "onebox", "meta_servers": ["127.0.0.1:34601"], "primary_meta": "127.0.0.1:34601",
                     "meta_level": "steady", "node_count": 3, "alive_node_count": 3, "app_count": 1},
    "server-info": {"results": [
        {"address": "127.0.0.1:34601", "role": "meta", "ok": True,
         "output": {"role": "meta", "version": "0.1.0", "pid": 100, "uptime_seconds": 42, "leading": True},
         "error": None},
        {"address": "127.0.0.1:34801", "role": "replica", "ok": False, "output": None, "error": "timed out"}]},
    "remote-command": {"command": "help", "args": [], "results": [
        {"address": "127.0.0.1:34601", "role": "meta", "ok": True, "output": "help: list the remote commands",
         "error": None},
        {"address": "127.0.0.1:34801", "role": "replica", "ok": True, "output": {"count": 2}, "error": None}]},
    "meta-level": {"level": "lively", "old_level": "steady"},
    "dup": {"action": "list", "table": "temp", "duplications": [
        {"dupid": 1795345422, "remote": "dst", "status": "DS_LOG", "fail_mode": "FAIL_SLOW",
         "create_ts_ms": 1795345422996, "confirmed": {"0": 6, "1": 5}, "pending_mutations": 3}]},
    "set_dup_fail_mode": {"action": "set_fail_mode", "table": "temp", "duplications": [
        {"dupid": 1795345422, "remote": "dst", "status": "DS_PAUSE", "fail_mode": "FAIL_SKIP",
         "create_ts_ms": 1795345422996, "confirmed": {"0": 6, "1": 5}}]},
    "set": {"hash_key": b"hk", "sort_key": b"sk", "ttl_seconds": 0},
    "get": {"hash_key": b"hk", "sort_key": b"sk", "found": True, "value": b"hello world\x00\xff"},
    "del": {"hash_key": b"hk", "sort_key": b"sk"},
    "multi_set": {"hash_key": b"hk", "count": 2, "ttl_seconds": 0},
    "multi_get": {"hash_key": b"hk", "kvs": [{"hash_key": b"hk", "sort_key": b"a", "value": b"1"},
                                             {"hash_key": b"hk", "sort_key": b"b c", "value": b'say "hi"'}],
                  "complete": True},
    "multi_del": {"hash_key": b"hk", "deleted_count": 2},
    "incr": {"hash_key": b"hk", "sort_key": b"n", "increment": 5, "value": 12},
    "check_and_set": {"hash_key": b"hk", "check_sort_key": b"n", "check_type": "int_equal", "set_sort_key": b"f",
                      "set_succeed": False, "check_value_returned": True, "check_value_exist": True,
                      "check_value": b"12"},
    "exist": {"hash_key": b"hk", "sort_key": b"sk", "exists": False},
    "monitor": {"monitor": "closed", "interval": 1.0},
    "ttl": {"hash_key": b"hk", "sort_key": b"sk", "exists": True, "ttl_seconds": 99},
    "count": {"hash_key": b"hk", "count": 7},
    "hash_scan": {"hash_key": b"hk", "kvs": [{"hash_key": b"hk", "sort_key": b"a", "value": b"1"}],
                  "truncated": True},
    "full_scan": {"kvs": [{"hash_key": b"\x01", "sort_key": b"", "value": b"x"},
                          {"hash_key": b"hk", "sort_key": b"a", "value": None}], "truncated": False},
    "count_data": {"table": "t1", "partitions": [{"pidx": 0, "rows": 3}, {"pidx": 1, "rows": 0}], "total_rows": 3},
}
