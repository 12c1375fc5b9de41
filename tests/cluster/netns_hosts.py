"""Several hosts on one machine: Linux network namespaces on one bridge, each with an address of its own.

Each host is a network namespace with a veth link to a bridge in the test's own namespace, so the test (the
client) reaches every host and the hosts reach each other, each at its own IP address. Every node then listens
on the default ports (34601, 34801), as it would on its own machine, and a host's link can really go down: the
kernel drops its packets, connections hang instead of being refused, as when a switch port or a cable fails.

The addresses are in 198.18.0.0/15 (RFC 2544: benchmarking, never routed), with a random /24 per run so that
two runs at once cannot meet. The namespaces and the bridge are named with the test process's pid; the ones left
by a process that died without cleaning up are removed by the next run. It needs root (``ip netns``).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pegasus_node.base.pids import pid_alive
from tests.cluster.onebox_harness import kill_pid, wait_pid_gone

PREFIX = "pgt"  # every namespace and link this harness makes starts with it, then the owner's pid
_NETWORK_LETTERS = itertools.cycle("abcdefghijklmnopqrstuvwxyz")
META_PORT, REPLICA_PORT = 34601, 34801


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def netns_unavailable() -> str:
    """Why hosts in network namespaces cannot be made here ("" if they can)."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"{PREFIX}{os.getpid()}probe"
    try:
        made = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run `ip netns`: {exc}"
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return ""


def remove_leftovers() -> None:
    """Namespaces and bridges of earlier runs whose process is gone (a run killed before its teardown)."""
    listed = _ip("netns", "list", check=False).stdout.split()
    links = _ip("-o", "link", "show", check=False).stdout.splitlines()
    names = [n for n in listed if n.startswith(PREFIX)]
    names += [line.split(": ")[1].split("@")[0] for line in links if ": " + PREFIX in line]
    for name in names:
        owner = "".join(ch for ch in name[len(PREFIX):].split("h")[0].split("b")[0] if ch.isdigit())
        if owner and not pid_alive(int(owner)):
            if name in listed:
                _ip("netns", "del", name, check=False)
            else:
                _ip("link", "del", name, check=False)


@dataclass
class Host:
    name: str  # the network namespace
    address: str  # its IP address on the bridge
    link: str  # the bridge's end of its veth pair: down cuts the host off


@dataclass
class Node:
    role: str
    host: Host
    port: int
    command: list[str]
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host.address}:{self.port}"


@dataclass
class HostNetwork:
    """``count`` hosts on one bridge; ``close`` removes them all."""

    count: int
    hosts: list[Host] = field(default_factory=list)
    bridge: str = ""
    gateway: str = ""

    def create(self) -> "HostNetwork":
        remove_leftovers()
        # A letter per network of this process: a veth pair can outlive its namespace's deletion for a moment,
        # so the next network must not reuse the names.
        owner = f"{os.getpid()}{next(_NETWORK_LETTERS)}"
        subnet = f"198.18.{random.randrange(256)}"
        self.bridge, self.gateway = f"{PREFIX}{owner}b", f"{subnet}.1"
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for index in range(1, self.count + 1):
                host = Host(f"{PREFIX}{owner}h{index}", f"{subnet}.{10 + index}", f"{PREFIX}{owner}h{index}v")
                _ip("netns", "add", host.name)
                self.hosts.append(host)
                _ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.name)
                _ip("link", "set", host.link, "master", self.bridge)
                _ip("link", "set", host.link, "up")
                _ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", "eth0")
                _ip("-n", host.name, "link", "set", "eth0", "up")
                _ip("-n", host.name, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as exc:
            self.close()
            raise RuntimeError(f"cannot make the test hosts: {' '.join(exc.cmd)}: {exc.stderr.strip()}") from exc
        return self

    def cut(self, host: Host) -> None:
        """The host's cable is pulled: its packets are dropped, both ways."""
        _ip("link", "set", host.link, "down")

    def heal(self, host: Host) -> None:
        _ip("link", "set", host.link, "up")

    def cut_between(self, host: Host, other: Host) -> None:
        """Only ``host``'s packets to ``other`` are dropped (a blackhole route): the rest of its links work."""
        _ip("-n", host.name, "route", "add", "blackhole", f"{other.address}/32")

    def heal_between(self, host: Host, other: Host) -> None:
        _ip("-n", host.name, "route", "del", "blackhole", f"{other.address}/32")

    def close(self) -> None:
        for host in self.hosts:
            _ip("link", "del", host.link, check=False)  # the pair at once, not when the namespace is gone
            _ip("netns", "del", host.name, check=False)
        self.hosts = []
        if self.bridge:
            _ip("link", "del", self.bridge, check=False)


class HostCluster:
    """A meta server on the first host (or one on each of ``meta_hosts``, sharing their state in the ZooKeeper
    at ``zookeeper``) and a replica server on every host (or on ``replica_hosts``), each started in its host's
    namespace with the default ports. Every process is stopped by its pid at ``stop``."""

    def __init__(self, network: HostNetwork, data_dir: Path, extra_args: list[str] | None = None, *,
                 meta_hosts: tuple[int, ...] = (0,), replica_hosts: tuple[int, ...] | None = None,
                 zookeeper: str = "") -> None:
        self.network = network
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args or [])
        self.zookeeper = zookeeper
        self.meta_address = ",".join(f"{network.hosts[i].address}:{META_PORT}" for i in meta_hosts)
        self.nodes: list[Node] = [self._node("meta", network.hosts[i], META_PORT) for i in meta_hosts]
        if replica_hosts is None:
            replica_hosts = tuple(range(len(network.hosts)))
        self.nodes += [self._node("replica", network.hosts[i], REPLICA_PORT) for i in replica_hosts]
        self.started: list[subprocess.Popen] = []

    def _node(self, role: str, host: Host, port: int) -> Node:
        node_dir = self.data_dir / f"{host.name}-{role}"
        node_dir.mkdir(parents=True, exist_ok=True)
        command = ["ip", "netns", "exec", host.name, sys.executable, "-P", "-m", "pegasus_node.cli", role,
                   "--data-dir", str(node_dir), "--listen", host.address, "--port", str(port),
                   *self.extra_args, "--exit-with-parent", str(os.getpid())]
        command += ["--meta-list" if role == "meta" else "--meta", self.meta_address]
        if role == "meta" and self.zookeeper:
            command += ["--state-store", "zookeeper", "--zookeeper", self.zookeeper, "--cluster-root", "/pegasus/hosts"]
        return Node(role, host, port, command, node_dir / "stdout.log")

    def metas(self) -> list[Node]:
        return [node for node in self.nodes if node.role == "meta"]

    def node_at(self, address: str) -> Node:
        return next(node for node in self.nodes if node.address == address)

    def replicas(self) -> list[Node]:
        return [node for node in self.nodes if node.role == "replica"]

    def start(self, node: Node | None = None, timeout: float = 60.0) -> "HostCluster":
        """Start one node, or every node (the meta server first); wait until each listens."""
        for each in [node] if node is not None else self.nodes:
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
            with open(each.log_path, "ab") as log:
                each.process = subprocess.Popen(each.command, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=env)
            self.started.append(each.process)
            self._wait_listening(each, timeout)
        return self

    def _wait_listening(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                break
            try:
                socket.create_connection((node.host.address, node.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{node.role} on {node.address} did not start; its output:\n{self.log_tail(node)}")

    def log_tail(self, node: Node, lines: int = 30) -> str:
        try:
            return "\n".join(node.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"

    def kill9(self, node: Node) -> None:
        kill_pid(node.process.pid, signal.SIGKILL)
        assert wait_pid_gone(node.process.pid, 10), f"{node.address} (pid {node.process.pid}) survived SIGKILL"
        node.process.wait()

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
