"""The meta service serves meta calls only while it leads, from state loaded when it was elected."""

from __future__ import annotations

import itertools
import time

import pytest
import pytest_twisted
from twisted.internet import reactor

from pegasus_node.config import NodeConfig
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.meta.leadership import SoleLeadership, ZooKeeperLeadership
from pegasus_node.meta.service import MetaService
from pegasus_node.meta.state_store import FileStateStore
from pegasus_node.meta.zookeeper_store import ZooKeeperStateStore, connect
from tests.meta.test_leadership import until

_roots = itertools.count(1)


class Handlers:
    """What MetaService.register gives an RpcServer: method name -> handler."""

    def __init__(self, service: MetaService) -> None:
        self.table: dict = {}
        self.http: dict = {}
        service.register(self)

    def register(self, name, handler) -> None:
        self.table[name] = handler

    def add_http_json(self, path, fn) -> None:
        self.http[path] = fn

    def call(self, name: str, body: dict | None = None):
        return self.table[name](body or {}, None)


def zk_service(zookeeper, root: str, address: str) -> MetaService:
    config = NodeConfig(state_store="zookeeper", zookeeper_hosts=zookeeper.hosts, cluster_root=root,
                        meta_servers=("127.0.0.1:1", "127.0.0.1:2"))
    client = connect(zookeeper.hosts, session_timeout=2.0)
    store = ZooKeeperStateStore(client, zookeeper.hosts, root)
    leadership = ZooKeeperLeadership(client, root, address, reactor, fence=store.fence_with)
    return MetaService(config, address, store, leadership, on_stop=lambda: (client.stop(), client.close()))


def test_the_sole_meta_server_serves_and_cannot_start_when_its_state_is_malformed(tmp_path):
    store = FileStateStore(tmp_path / "meta_state.json")
    service = MetaService(NodeConfig(), "127.0.0.1:34601", store, SoleLeadership())
    handlers = Handlers(service)
    service.start()
    try:
        assert handlers.call("meta.list_apps") == {"apps": []}
        assert handlers.call("node.remote_command", {"command": "server-info"})["output"]["leading"] is True
    finally:
        service.stop()

    store.put("/apps/1", b"not json")
    broken = MetaService(NodeConfig(), "127.0.0.1:34601", store, SoleLeadership())
    Handlers(broken)
    with pytest.raises(PegasusError, match="cannot load the meta state from .* it is malformed"):
        broken.start()
    assert broken.current is None


@pytest_twisted.ensureDeferred
async def test_only_the_leader_serves_and_the_next_one_starts_from_the_shared_state(zookeeper):
    root = f"/pegasus/service{next(_roots)}"
    first = zk_service(zookeeper, root, "127.0.0.1:1")
    first_calls = Handlers(first)
    first.start()
    await until(lambda: first.current is not None)
    second = zk_service(zookeeper, root, "127.0.0.1:2")
    second_calls = Handlers(second)
    second.start()
    try:
        for name in ("127.0.0.1:34801", "127.0.0.1:34802"):
            first_calls.call("meta.beacon", {"address": name, "replicas": []})
        first_calls.call("meta.create_app", {"name": "t", "partition_count": 2, "replica_count": 2})

        with pytest.raises(PegasusError) as refused:
            second_calls.call("meta.list_apps")
        assert refused.value.code == ErrorCode.ERR_INVALID_STATE
        assert "127.0.0.1:2 is not the leader" in refused.value.message
        assert second_calls.call("node.remote_command", {"command": "server-info"})["output"]["leading"] is False
        with pytest.raises(PegasusError, match="not the leader"):
            second_calls.http["/meta/app/duplication"]({"name": ["t"]})
        assert first_calls.http["/meta/app/duplication"]({"name": ["t"]})["duplications"] == []

        first.stop()
        await until(lambda: second.current is not None, timeout=5.0)
        apps = second_calls.call("meta.list_apps")["apps"]
        assert [a["name"] for a in apps] == ["t"]
        config = second_calls.call("meta.query_config", {"app_name": "t"})
        assert all(p["primary"] for p in config["partitions"])
    finally:
        second.stop()


def test_a_meta_server_stops_on_sigterm_while_zookeeper_hangs(tmp_path):
    """ZooKeeper that answers nothing (SIGSTOP) must not keep a stopping meta server alive for ever: its
    leadership's release would be retried without end."""
    import os
    import signal
    import subprocess
    import sys

    from pegasus_node.onebox import free_port
    from tests.zookeeper_server import ZooKeeperServer, zookeeper_unavailable

    if zookeeper_unavailable():
        pytest.skip(zookeeper_unavailable())
    zookeeper = ZooKeeperServer(tmp_path / "zk", tick_ms=500).start()
    port = free_port()
    meta = subprocess.Popen([sys.executable, "-m", "pegasus_node.cli", "meta", "--data-dir", str(tmp_path / "meta"),
                             "--port", str(port), "--state-store", "zookeeper", "--zookeeper", zookeeper.hosts],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = connect(zookeeper.hosts, session_timeout=4.0)
        deadline = time.monotonic() + 30
        while not client.exists("/pegasus/onebox/leader") or not client.get_children("/pegasus/onebox/leader"):
            assert time.monotonic() < deadline, "the meta server never contended"
            time.sleep(0.2)
        client.stop()
        client.close()
        os.kill(zookeeper.process.pid, signal.SIGSTOP)
        meta.send_signal(signal.SIGTERM)
        assert meta.wait(30) == 0
    finally:
        if meta.poll() is None:
            meta.kill()
            meta.wait()
        os.kill(zookeeper.process.pid, signal.SIGCONT)
        zookeeper.stop()
