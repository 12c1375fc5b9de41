"""Fail points on real nodes: a failing WAL (as with a full disk) and HTTP control."""

from __future__ import annotations

import json
import urllib.request

import pytest
import pytest_twisted

from pegasus_node.client import Client, PegasusError
from pegasus_node.errors import ErrorCode


def http_get(address: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as response:
        return json.loads(response.read())


@pytest_twisted.ensureDeferred
async def test_failing_wal_write_is_a_clear_error_and_loses_nothing_acknowledged(onebox_factory):
    box = onebox_factory("disk", replicas=1)
    replica = box.address("replica1")
    client = Client(box.meta, timeout=3.0)
    table = await client.open_table("temp")
    for i in range(20):
        await table.set(f"k{i}", "s", f"v{i}")
    await client.admin.remote_command(replica, "fail-point", ["set", "wal.fsync", "error"])
    with pytest.raises(PegasusError) as info:
        await table.set("k-fail", "s", "never acknowledged")
    assert info.value.code == ErrorCode.ERR_DISK_IO
    assert "free disk space" in info.value.message
    # Every replica on the server shares its log (one fsync for all), so all of them stop until a restart.
    status = await client.admin.replica_status(replica)
    assert status["replicas"] and all(r["status"] == "ERROR" and "WAL write failed" in r["error"]
                                      for r in status["replicas"])
    assert "injected WAL write failure" in status["log_writer"]["failed"]
    await client.close()

    box.kill9("replica1")
    box.restart("replica1")  # fail points are not persistent: a restart is the way out
    client = Client(box.meta, timeout=10.0)
    table = await client.open_table("temp")
    for i in range(20):
        assert await table.get(f"k{i}", "s") == f"v{i}".encode()
    await table.set("k-after", "s", "ok")
    await client.close()


def test_fail_points_over_http_and_metrics(onebox_factory):
    box = onebox_factory("http", replicas=1)
    replica = box.address("replica1")
    assert http_get(replica, "/failpoints") == {"fail_points": {}}
    assert http_get(replica, "/failpoints?set=handler:rrdb.get&action=delay(5)") == {
        "fail_points": {"handler:rrdb.get": "delay(5)"}}
    assert http_get(replica, "/failpoints?clear=all") == {"fail_points": {}}
    with pytest.raises(urllib.error.HTTPError) as info:
        http_get(replica, "/failpoints?set=nonsense&action=drop")
    assert info.value.code == 400
    assert http_get(box.meta, "/version")["role"] == "meta"
    with urllib.request.urlopen(f"http://{replica}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert "pegasus_rpc_requests_total" in text
