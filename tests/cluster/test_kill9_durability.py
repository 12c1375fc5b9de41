"""Nothing acknowledged is lost when processes are killed with SIGKILL and started again."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor, task

from pegasus_node.client import Client, PegasusError
from tests.cluster.onebox_harness import Onebox

WRITERS = 16


def sleep(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


async def write_until_stopped(table, writer: int, acked: dict, stop: list) -> None:
    """Write distinct keys until told to stop; remember exactly the writes that were acknowledged."""
    n = 0
    while not stop:
        key = f"w{writer}-{n}".encode()
        try:
            await table.set(key, b"s", b"value-" + key, timeout=2.0)
        except PegasusError:
            await sleep(0.05)
            continue
        acked[key] = b"value-" + key
        n += 1


async def read_all(table, acked: dict) -> list:
    missing = []
    for key, value in acked.items():
        if await table.get(key, b"s", timeout=10.0) != value:
            missing.append(key)
    return missing


@pytest_twisted.ensureDeferred
async def test_kill9_every_replica_mid_stream_then_restart_onebox(tmp_path):
    box = Onebox(tmp_path / "box", replicas=3)
    box.start()
    try:
        client = Client(box.meta, timeout=5.0)
        table = await client.open_table("temp")
        acked: dict = {}
        stop: list = []
        writers = [defer.ensureDeferred(write_until_stopped(table, w, acked, stop)) for w in range(WRITERS)]
        while len(acked) < 300:
            await sleep(0.05)
        for name in box.replica_names():
            box.kill9(name)  # mid-stream: the writers are still going
        await sleep(0.5)
        stop.append(True)
        await defer.gatherResults(writers)
        await client.close()
        assert len(acked) >= 300
        box.stop()

        again = Onebox(tmp_path / "box", replicas=3)
        again.start()
        try:
            client = Client(again.meta, timeout=10.0)
            table = await client.open_table("temp")
            missing = await read_all(table, acked)
            await client.close()
            assert missing == [], f"{len(missing)} of {len(acked)} acknowledged writes lost: {missing[:5]}"
        finally:
            again.stop()
    finally:
        box.stop()


@pytest_twisted.ensureDeferred
async def test_kill9_one_replica_and_restart_it_alone(onebox_factory):
    box = onebox_factory("single")
    client = Client(box.meta, timeout=10.0)
    table = await client.open_table("temp")
    acked = {}
    for i in range(200):
        key = f"k{i}".encode()
        await table.set(key, b"s", key * 3)
        acked[key] = key * 3
    victim = box.replica_names()[0]
    box.kill9(victim)
    box.restart(victim)
    assert await read_all(table, acked) == []
    await table.set(b"after", b"restart", b"ok")
    assert await table.get(b"after", b"restart") == b"ok"
    await client.close()


@pytest_twisted.ensureDeferred
async def test_meta_restart_keeps_tables_and_assignments(onebox_factory):
    box = onebox_factory("meta_restart")
    client = Client(box.meta, timeout=10.0)
    await client.admin.create_app("kept", partition_count=4, replica_count=1)
    before = await client.admin.query_config("kept")
    table = await client.open_table("kept")
    await table.set(b"a", b"b", b"c")
    box.kill9("meta")
    box.restart("meta")
    after = await client.admin.query_config("kept")
    assert [p["primary"] for p in after["partitions"]] == [p["primary"] for p in before["partitions"]]
    assert await table.get(b"a", b"b") == b"c"
    await table.set(b"a", b"b2", b"c2")
    await client.close()


@pytest_twisted.ensureDeferred
async def test_checkpoint_and_wal_gc_then_restart(onebox_factory):
    box = onebox_factory("ckpt")
    client = Client(box.meta, timeout=10.0)
    table = await client.open_table("temp")
    for i in range(100):
        await table.set(f"c{i}".encode(), b"s", b"before")
    for name in box.replica_names():
        reply = await client.admin.remote_command(box.address(name), "replica.checkpoint", [])
        assert reply["output"], reply
    for i in range(50, 150):
        await table.set(f"c{i}".encode(), b"s", b"after")
    for name in box.replica_names():
        box.kill9(name)
        box.restart(name)
    for i in range(150):
        expected = b"before" if i < 50 else b"after"
        assert await table.get(f"c{i}".encode(), b"s") == expected
    status = await client.admin.replica_status(box.address(box.replica_names()[0]))
    assert any(r["checkpoint_decree"] > 0 for r in status["replicas"])
    await client.close()
