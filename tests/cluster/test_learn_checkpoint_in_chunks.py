"""A replica that comes back after its partition's WAL was garbage-collected learns from the primary's
checkpoint, and the checkpoint is bigger than one RPC frame: it must arrive in chunks
(``replica.checkpoint_chunk``), not inline in the learn response, or the partition never heals."""

from __future__ import annotations

import time

import pytest_twisted

from pegasus_node.client import Client, PegasusError
from pegasus_node.twisted_rpc import RpcClientPool
from tests.cluster.test_replication_failover import fully_replicated, wait_for
from tests.cluster.workload import SORT_KEY

TABLE = "bigckpt"
FRAME_LIMIT = 1 << 20
# Frames of 1 MiB; checkpoints at least once a second; small WAL segments so that a checkpoint lets the
# primary garbage-collect the decrees a returning replica would otherwise learn from the WAL.
CONFIG = f"""
[core]
max_frame_bytes = {FRAME_LIMIT}

[replication]
checkpoint_interval_seconds = 1
checkpoint_min_mutations = 50
wal_segment_max_bytes = 65536
"""
# Sequential writes, one mutation each: more than the primary keeps in memory (keep_committed_mutations,
# 256) happen while the victim is down, so that it cannot learn from memory either.
BEFORE_KILL, WHILE_DOWN = 150, 330
VALUE_BYTES = 6000  # about 2.9 MB in all: the checkpoint is well over the frame limit


def value_of(key: bytes) -> bytes:
    return (key * (VALUE_BYTES // len(key) + 1))[:VALUE_BYTES]


async def write_keys(table, prefix: str, count: int, acked: dict) -> None:
    for n in range(count):
        key = f"{prefix}{n:04d}".encode()
        deadline = time.monotonic() + 30
        while True:
            try:
                await table.set(key, SORT_KEY, value_of(key), timeout=5.0)
                break
            except PegasusError:
                if time.monotonic() > deadline:
                    raise
        acked[key] = value_of(key)


def partition_entry(status: dict) -> dict | None:
    return next((r for r in status["replicas"] if r["app_name"] == TABLE), None)


@pytest_twisted.ensureDeferred
async def test_a_replica_learns_a_checkpoint_bigger_than_a_frame_in_chunks(onebox_factory, tmp_path):
    config = tmp_path / "node.ini"
    config.write_text(CONFIG)
    box = onebox_factory("bigckpt", replicas=3, extra_args=["--config", str(config), "--app", TABLE,
                                                            "--partitions", "1"])
    client = Client(box.meta, timeout=10.0)
    admin = client.admin

    async def parts():
        return (await admin.query_config(TABLE))["partitions"]

    await wait_for(lambda: _healthy(parts), 30, "the table to be fully replicated")
    table = await client.open_table(TABLE)
    acked: dict[bytes, bytes] = {}
    await write_keys(table, "before", BEFORE_KILL, acked)

    part = (await parts())[0]
    primary, victim_address = part["primary"], part["secondaries"][0]
    victim = _node_name(box, victim_address)
    committed_before_kill = partition_entry(await admin.replica_status(victim_address))["last_committed_decree"]
    box.kill9(victim)

    await write_keys(table, "down", WHILE_DOWN, acked)
    primary = (await parts())[0]["primary"]

    async def wal_collected():
        # Two forced checkpoints: the WAL is kept down to the older of the two newest checkpoints.
        await admin.remote_command(primary, "replica.checkpoint")
        entry = partition_entry(await admin.replica_status(primary))
        first = entry["stats"]["wal_first_decree"]
        return (first == 0 or first > committed_before_kill + 1) and entry

    primary_entry = await wait_for(wal_collected, 15, "the primary to garbage-collect the victim's decrees")
    checkpoint_decree = primary_entry["checkpoint_decree"]
    app_id = (await admin.query_config(TABLE))["app"]["app_id"]
    checkpoint_dir = tmp_path / "bigckpt" / _node_name(box, primary) / "replica" / f"{app_id}.0" / "checkpoints"
    newest = max(checkpoint_dir.glob("checkpoint.*.ckpt"))
    assert newest.stat().st_size > FRAME_LIMIT, f"the checkpoint ({newest.stat().st_size} bytes) must exceed a frame"

    box.restart(victim)

    async def healed():
        current = await parts()
        return fully_replicated(current) and victim_address in current[0]["secondaries"]

    await wait_for(healed, 30, f"{victim_address} to learn the checkpoint and become a secondary again")

    learned = partition_entry(await admin.replica_status(victim_address))["learned_checkpoint"]
    assert learned["decree"] >= checkpoint_decree and learned["bytes"] > FRAME_LIMIT, learned
    assert learned["chunks"] > 1, learned

    wrong = [key for key, value in acked.items() if await table.get(key, SORT_KEY, timeout=10.0) != value]
    assert wrong == [], f"{len(wrong)} of {len(acked)} acknowledged keys read back wrong: {wrong[:5]}"
    held = await _keys_on(app_id, victim_address)
    assert set(acked) <= held, f"{len(set(acked) - held)} acknowledged keys are missing on {victim_address}"
    await client.close()


async def _healthy(parts) -> bool:
    return fully_replicated(await parts())


def _node_name(box, address: str) -> str:
    return next(name for name in box.replica_names() if box.address(name) == address)


async def _keys_on(app_id: int, address: str) -> set[bytes]:
    """Every hash key the replica at ``address`` holds, read from it directly (a backup-request scan: a
    secondary answers it from its own engine)."""
    pool = RpcClientPool()
    keys: set[bytes] = set()
    start, first = b"", True
    try:
        while True:
            reply = await pool.call(address, "rrdb.scan", {
                "gpid": [app_id, 0], "start_key": start, "stop_key": b"", "start_inclusive": first,
                "batch_size": 200, "no_value": True, "backup_request": True}, 10.0)
            keys.update(hash_key for hash_key, _, _ in reply["kvs"])
            start, first = reply["next_start_key"], False
            if not start:
                return keys
    finally:
        await pool.close()
