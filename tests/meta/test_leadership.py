"""Meta servers elected through a real ZooKeeper: one leads, the next takes over when it steps down or its
session ends, and a deposed leader's writes are refused."""

from __future__ import annotations

import itertools
import time

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from pegasus_node.meta.leadership import ZooKeeperLeadership
from pegasus_node.meta.zookeeper_store import NotLeaderError, ZooKeeperStateStore, connect

_roots = itertools.count(1)


class Contender:
    """A meta server's leadership, its store, and what it heard."""

    def __init__(self, hosts: str, root: str, address: str) -> None:
        self.client = connect(hosts, session_timeout=2.0)
        self.store = ZooKeeperStateStore(self.client, hosts, root)
        self.leadership = ZooKeeperLeadership(self.client, root, address, reactor, fence=self.store.fence_with)
        self.heard: list[str] = []

    def start(self) -> "Contender":
        self.leadership.start(lambda: self.heard.append("elected"), lambda why: self.heard.append(f"deposed: {why}"))
        return self

    def close(self) -> None:
        self.leadership.stop()
        self.client.stop()
        self.client.close()


@pytest.fixture
def contenders(zookeeper):
    root = f"/pegasus/election{next(_roots)}"
    made: list[Contender] = []

    def make(address: str) -> Contender:
        made.append(Contender(zookeeper.hosts, root, address).start())
        return made[-1]

    yield make
    for contender in made:
        contender.close()


async def until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await task.deferLater(reactor, 0.05, lambda: None)


async def leader_then_follower(contenders) -> tuple[Contender, Contender]:
    """The first contender, once it leads, and a second one that has contended for a second since."""
    first = contenders("127.0.0.1:1")
    await until(lambda: first.heard == ["elected"])
    second = contenders("127.0.0.1:2")
    await task.deferLater(reactor, 1.0, lambda: None)
    return first, second


@pytest_twisted.ensureDeferred
async def test_one_leads_and_the_next_takes_over_when_it_steps_down(contenders):
    first, second = await leader_then_follower(contenders)
    assert second.heard == [] and not second.leadership.is_leading()
    assert first.leadership.is_leading()

    first.leadership.stop()  # a clean shutdown hands over at once, without waiting for the session to expire
    await until(lambda: second.heard == ["elected"], timeout=5.0)
    assert second.leadership.is_leading() and not first.leadership.is_leading()
    second.store.put("/meta/next_app_id", b"7")


@pytest_twisted.ensureDeferred
async def test_a_leader_whose_session_ends_is_deposed_and_its_writes_are_refused(contenders):
    first, second = await leader_then_follower(contenders)

    # The leader loses ZooKeeper (as when its host is cut off): it is deposed, and the other leads.
    first.client.stop()
    await until(lambda: second.heard == ["elected"])
    assert first.heard[0] == "elected" and first.heard[1].startswith("deposed")
    assert not first.leadership.is_leading()

    # Its connection back, the old leader contends again but the new one leads; a write under its old fence
    # would be refused (NotLeaderError), even though its new session is healthy.
    first.client.start()
    await task.deferLater(reactor, 1.0, lambda: None)
    assert not first.leadership.is_leading() and second.leadership.is_leading()
    with pytest.raises(NotLeaderError):
        first.store.put("/meta/next_app_id", b"99")
    second.store.put("/meta/next_app_id", b"8")
    assert second.store.get("/meta/next_app_id") == b"8"
