"""Duplication between two real oneboxes (seed 002): a table's writes reach the same table on the other
cluster, whose partition count differs; pause holds them back and start ships them; kill -9 of a source
primary loses none; incr is not shipped."""

from __future__ import annotations

import urllib.request

import pytest
import pytest_twisted
from twisted.internet import threads

from pegasus_node.client import Client, PegasusError
from pegasus_node.onebox import free_port
from tests.cluster.test_replication_failover import wait_for
from tests.cluster.workload import sleep


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def write_config(path, name: str, cluster_id: int, remotes: dict, server_extra: str = "") -> str:
    clusters = "".join(f"{n} = {metas}\n" for n, metas in remotes.items())
    path.write_text(f"[pegasus.server]\ncluster_name = {name}\ncluster_id = {cluster_id}\n{server_extra}"
                    f"[pegasus.clusters]\n{clusters}[duplication-group]\nsrc = 1\ndst = 2\n")
    return str(path)


def source_and_remote(onebox_factory, tmp_path, replicas: int = 1, remote_args: tuple = (), source_extra: str = ""):
    """Two oneboxes: the remote cluster "dst", and the source "src" whose [pegasus.clusters] names it."""
    dst_box = onebox_factory("dst", replicas=replicas, extra_args=[
        *remote_args, "--config", write_config(tmp_path / "dst.ini", "dst", 2, {})])
    src_box = onebox_factory("src", replicas=replicas, extra_args=[
        "--config", write_config(tmp_path / "src.ini", "src", 1, {"dst": dst_box.meta}, source_extra)])
    return src_box, dst_box


async def all_there(table, expected: dict) -> bool:
    for (hk, sk), value in expected.items():
        if await table.get(hk, sk, timeout=5.0) != value:
            return False
    return True


@pytest_twisted.ensureDeferred
async def test_writes_reach_the_other_cluster_through_pause_start_and_a_killed_primary(onebox_factory, tmp_path):
    src_box, dst_box = source_and_remote(onebox_factory, tmp_path, replicas=3, remote_args=("--partitions", "4"))
    src, dst = Client(src_box.meta, timeout=10.0), Client(dst_box.meta, timeout=10.0)
    source, target = await src.open_table("temp"), await dst.open_table("temp")

    async def added():  # refused (ERR_TRY_AGAIN) until every primary has reported its commit point
        return (await src.admin.add_duplication("temp", "dst"))["duplication"]["dupid"]

    dupid = await wait_for(added, 15, "the duplication to be added")
    expected = {}
    for i in range(100):
        await source.set(b"k%d" % i, b"s", b"v%d" % i)
        expected[(b"k%d" % i, b"s")] = b"v%d" % i
    await source.multi_set(b"multi", {b"a": b"1", b"b": b"2"})
    expected.update({(b"multi", b"a"): b"1", (b"multi", b"b"): b"2"})
    await source.delete(b"k7", b"s")
    expected[(b"k7", b"s")] = None
    await source.incr(b"counter", b"n", 5)

    await wait_for(lambda: all_there(target, expected), 30, "the writes to reach the other cluster")
    assert await target.get(b"counter", b"n") is None, "incr is not idempotent: it must not be shipped"

    await src.admin.modify_duplication("temp", dupid, status="DS_PAUSE")
    await sleep(1.5)  # a beacon: the duplicators stop
    await source.set(b"paused", b"s", b"1")
    await sleep(2.0)
    assert await target.get(b"paused", b"s") is None, "a paused duplication shipped a write"
    await src.admin.modify_duplication("temp", dupid, status="DS_LOG")
    expected[(b"paused", b"s")] = b"1"
    await wait_for(lambda: all_there(target, expected), 30, "a started duplication to ship what was held back")

    # kill -9 the primary of a partition while writing: its successor resumes from the confirmed decree.
    victim_address = (await src.admin.query_config("temp"))["partitions"][0]["primary"]
    victim = next(n for n in src_box.replica_names() if src_box.address(n) == victim_address)
    acked = {}
    for i in range(300):
        if i == 50:
            src_box.kill9(victim)
        try:
            await source.set(b"late%d" % i, b"s", b"x%d" % i, timeout=10.0)
            acked[(b"late%d" % i, b"s")] = b"x%d" % i
        except Exception:
            pass
    src_box.restart(victim)
    assert len(acked) > 250
    await wait_for(lambda: all_there(target, acked), 60, "every write acknowledged around the kill to be shipped")

    listed = (await src.admin.query_duplication("temp"))["duplications"]
    assert [(d["dupid"], d["status"]) for d in listed] == [(dupid, "DS_LOG")]

    async def caught_up():
        statuses = [await src.admin.replica_status(src_box.address(n)) for n in src_box.replica_names()]
        shipping = [d for status in statuses for d in status["duplications"]]
        return len(shipping) == 8 and all(d["pending_mutations"] == 0 for d in shipping)

    await wait_for(caught_up, 30, "a duplicator on each partition's primary, with nothing left to ship")
    progress = (await src.admin.query_duplication("temp"))["duplications"][0]
    assert all(int(decree) > 0 for decree in progress["confirmed"].values()), progress
    scraped = "".join([await threads.deferToThread(http_get, f"http://{src_box.address(n)}/metrics")
                       for n in src_box.replica_names()])
    shipped = [line for line in scraped.splitlines() if line.startswith("pegasus_dup_shipped_ops_total{")]
    assert len(shipped) == 8 and sum(float(line.rsplit(" ", 1)[1]) for line in shipped) > 0, shipped
    await src.close()
    await dst.close()


@pytest_twisted.ensureDeferred
async def test_a_remote_cluster_down_for_a_while_gets_every_write_once_it_is_back(onebox_factory, tmp_path):
    src_box, dst_box = source_and_remote(onebox_factory, tmp_path,
                                         source_extra="dup_lagging_write_threshold_ms = 500\n")
    src = Client(src_box.meta, timeout=10.0)
    source = await src.open_table("temp")

    async def added():
        return (await src.admin.add_duplication("temp", "dst"))["duplication"]["dupid"]

    await wait_for(added, 15, "the duplication to be added")
    dst_box.stop()  # the whole remote cluster: its processes stopped by pid
    expected = {}
    for i in range(50):
        await source.set(b"while-down%d" % i, b"s", b"%d" % i)
        expected[(b"while-down%d" % i, b"s")] = b"%d" % i

    async def failing():
        status = await src.admin.replica_status(src_box.address("replica1"))
        return any(d["failed_shipping_ops"] > 0 and d["last_error"] for d in status["duplications"])

    await wait_for(failing, 30, "the duplicators to report failed shipments")
    dst_box.start()  # the same directory and ports: the same cluster, back
    dst = Client(dst_box.meta, timeout=10.0)
    target = await dst.open_table("temp")
    await wait_for(lambda: all_there(target, expected), 60, "FAIL_SLOW to ship every held-back write")
    status = await src.admin.replica_status(src_box.address("replica1"))
    assert sum(d["lagging_writes"] for d in status["duplications"]) >= 50, "held back for seconds: lagging"
    await src.close()
    await dst.close()


@pytest_twisted.ensureDeferred
async def test_two_clusters_duplicating_to_each_other_agree_and_ship_nothing_back(onebox_factory, tmp_path):
    """Multi-master: each cluster's writes reach the other; a write that arrived by duplication is not shipped
    back (or it would circle for ever); both clusters writing one key settle on the same value."""
    ports = {name: (free_port(), free_port()) for name in ("a", "b")}
    metas = {name: f"127.0.0.1:{meta}" for name, (meta, _) in ports.items()}
    boxes, clients, tables = {}, {}, {}
    for name, cluster_id, other in (("a", 1, "b"), ("b", 2, "a")):
        config = tmp_path / f"{name}.ini"
        config.write_text(f"[pegasus.server]\ncluster_name = {name}\ncluster_id = {cluster_id}\n"
                          f"[pegasus.clusters]\n{other} = {metas[other]}\n[duplication-group]\na = 1\nb = 2\n")
        meta_port, replica_port = ports[name]
        boxes[name] = onebox_factory(name, replicas=1, extra_args=[
            "--config", str(config), "--meta-port", str(meta_port), "--replica-port", str(replica_port)])
    for name, other in (("a", "b"), ("b", "a")):
        clients[name] = Client(boxes[name].meta, timeout=10.0)
        tables[name] = await clients[name].open_table("temp")

        async def added(name=name, other=other):
            return await clients[name].admin.add_duplication("temp", other)

        await wait_for(added, 15, f"{name} to duplicate to {other}")

    expected = {}
    for i in range(40):
        await tables["a"].set(b"from-a%d" % i, b"s", b"a%d" % i)
        await tables["b"].set(b"from-b%d" % i, b"s", b"b%d" % i)
        expected[(b"from-a%d" % i, b"s")] = b"a%d" % i
        expected[(b"from-b%d" % i, b"s")] = b"b%d" % i
    for round_ in range(20):  # both write the same keys, nearly at once
        for name in ("a", "b"):
            await tables[name].set(b"contended%d" % (round_ % 4), b"s", b"%s%d" % (name.encode(), round_))
    for name in ("a", "b"):
        await wait_for(lambda name=name: all_there(tables[name], expected), 30, f"every write on cluster {name}")

    async def settled():
        values = [[await tables[n].get(b"contended%d" % k, b"s") for k in range(4)] for n in ("a", "b")]
        return values[0] == values[1] and None not in values[0]

    await wait_for(settled, 30, "both clusters to settle on the same value of every contended key")

    async def shipped_counts():
        counts = {}
        for name in ("a", "b"):
            status = await clients[name].admin.replica_status(boxes[name].address("replica1"))
            counts[name] = sum(d["shipped_ops"] for d in status["duplications"])
        return counts

    # Each cluster ships its own writes only: 40 unique and 20 contended. A write shipped back would add the
    # other cluster's 60, and go on circling.
    async def all_shipped():
        return await shipped_counts() == {"a": 60, "b": 60}

    await wait_for(all_shipped, 30, "each cluster to ship its own 60 writes")
    await sleep(2.0)
    assert await shipped_counts() == {"a": 60, "b": 60}, "writes went on being shipped: something circles"
    for client in clients.values():
        await client.close()


@pytest_twisted.ensureDeferred
async def test_full_duplication_creates_the_table_and_copies_what_it_held(onebox_factory, tmp_path):
    src_box, dst_box = source_and_remote(onebox_factory, tmp_path)
    src, dst = Client(src_box.meta, timeout=10.0), Client(dst_box.meta, timeout=10.0)
    await src.admin.create_app("held", partition_count=4, replica_count=1)
    source = await src.open_table("held")

    async def writable():
        await source.set(b"probe", b"s", b"p", timeout=2.0)
        return True

    await wait_for(writable, 30, "the new table to take writes")
    expected = {(b"probe", b"s"): b"p"}
    for i in range(300):  # held before the duplication exists: only the copy can bring them over
        await source.set(b"old%d" % i, b"s", b"o%d" % i, ttl_seconds=3600 if i % 2 else 0)
        expected[(b"old%d" % i, b"s")] = b"o%d" % i
    await source.delete(b"old5", b"s")
    expected[(b"old5", b"s")] = None

    with pytest.raises(PegasusError, match="has no table held"):
        await src.admin.add_duplication("held", "dst")
    held_dupid = (await src.admin.add_duplication("held", "dst", full=True))["duplication"]["dupid"]
    # A second table's duplication, added in the same second, very likely has the same dupid: each table's
    # writes must still go to its own table.
    temp_dupid = (await wait_for(lambda: src.admin.add_duplication("temp", "dst"), 15, "temp's duplication"))[
        "duplication"]["dupid"]
    temp_source, temp_target = await src.open_table("temp"), await dst.open_table("temp")
    await temp_source.set(b"temp-only", b"s", b"t")
    for i in range(100):  # written while the copy runs: shipped from the log
        await source.set(b"new%d" % i, b"s", b"n%d" % i)
        expected[(b"new%d" % i, b"s")] = b"n%d" % i

    target = await dst.open_table("held")
    assert target.partition_count == 4
    await wait_for(lambda: all_there(target, expected), 60, "the copy and the log to reach the new table")
    assert await target.ttl(b"old1", b"s") > 3000, "a copied record must keep its expiry"
    await wait_for(lambda: all_there(temp_target, {(b"temp-only", b"s"): b"t"}), 30, "temp's write on dst's temp")
    assert await target.get(b"temp-only", b"s") is None, f"dupids {held_dupid}, {temp_dupid}: a write went astray"

    async def copied():
        [entry] = (await src.admin.query_duplication("held"))["duplications"]
        return entry["status"] == "DS_LOG" and all(int(d) >= 0 for d in entry["confirmed"].values())

    await wait_for(copied, 30, "every partition to finish its copy (DS_PREPARE to DS_LOG)")
    with pytest.raises(PegasusError, match="already duplicates"):
        await src.admin.add_duplication("held", "dst", full=True)
    await src.close()
    await dst.close()
