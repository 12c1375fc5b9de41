from __future__ import annotations

import pytest

from tests.zookeeper_server import ZooKeeperServer, zookeeper_unavailable


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory):
    """One real ZooKeeper server for the session's tests; each test uses a cluster root of its own."""
    why = zookeeper_unavailable()
    if why:
        pytest.skip(f"no ZooKeeper server here: {why}")
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper")).start()
    try:
        yield server
    finally:
        server.stop()
