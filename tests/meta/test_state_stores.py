"""The state store contract, for the file store and the ZooKeeper store alike (a real ZooKeeper server)."""

from __future__ import annotations

import itertools

import pytest

from pegasus_node.meta.state_store import FileStateStore, StateStoreError
from pegasus_node.meta.zookeeper_store import NotLeaderError, ZooKeeperStateStore, connect

_roots = itertools.count(1)


@pytest.fixture
def zk_client(zookeeper):
    client = connect(zookeeper.hosts, session_timeout=4.0)
    yield client
    client.stop()
    client.close()


@pytest.fixture(params=["file", "zookeeper"])
def store(request, tmp_path):
    if request.param == "file":
        yield FileStateStore(tmp_path / "meta_state.json")
        return
    client = request.getfixturevalue("zk_client")
    yield ZooKeeperStateStore(client, request.getfixturevalue("zookeeper").hosts, f"/pegasus/contract{next(_roots)}")


def reopen(store, tmp_path):
    if isinstance(store, FileStateStore):
        return FileStateStore(tmp_path / "meta_state.json")
    return ZooKeeperStateStore(store.client, store.hosts, store.cluster_root)


def test_puts_gets_children_and_subtree_deletes(store, tmp_path):
    assert store.get("/apps/1") is None
    assert store.children("/apps") == []
    store.apply({"/meta/next_app_id": b"3", "/apps/1": b"one", "/apps/1/partitions/0": b"p0",
                 "/apps/1/partitions/1": b"p1", "/apps/2": b"two"})
    assert store.get("/apps/1") == b"one"
    assert store.children("/apps") == ["1", "2"]
    assert store.children("/apps/1/partitions") == ["0", "1"]
    store.put("/apps/1/partitions/1", b"p1'")  # an overwrite
    store.apply({"/meta/purged_app_ids": b"[1]"}, ["/apps/1"])  # a delete takes the subtree
    again = reopen(store, tmp_path)
    assert again.children("/apps") == ["2"]
    assert again.get("/apps/1/partitions/0") is None
    assert (again.get("/meta/next_app_id"), again.get("/meta/purged_app_ids")) == (b"3", b"[1]")


def test_a_subtree_deleted_and_written_again_in_one_apply(store):
    store.apply({"/apps/5": b"old", "/apps/5/partitions/0": b"x"})
    store.apply({"/apps/5": b"new"}, ["/apps/5"])
    assert store.get("/apps/5") == b"new"
    assert store.children("/apps/5") == []


def test_zookeeper_writes_stop_once_the_leaders_fence_is_gone(zookeeper, zk_client):
    root = f"/pegasus/fence{next(_roots)}"
    store = ZooKeeperStateStore(zk_client, zookeeper.hosts, root)
    fence = zk_client.create(f"{root}/leader/n_", b"", ephemeral=True, sequence=True, makepath=True)
    store.fence_with(fence)
    store.put("/meta/next_app_id", b"1")
    zk_client.delete(fence)  # what ZooKeeper does when the leader's session expires
    with pytest.raises(NotLeaderError, match="no longer the leader"):
        store.apply({"/meta/next_app_id": b"2", "/apps/9": b"x"})
    assert store.get("/meta/next_app_id") == b"1"  # nothing of the refused transaction was applied
    assert store.get("/apps/9") is None


def test_zookeeper_unreachable_is_a_clear_error():
    with pytest.raises(StateStoreError, match="cannot reach ZooKeeper at 127.0.0.1:1 .* hosts_list"):
        connect("127.0.0.1:1", session_timeout=2.0, connect_timeout=1.0)
