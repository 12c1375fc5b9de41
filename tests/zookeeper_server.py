"""A real ZooKeeper server for tests: Debian's ``zookeeper`` package (``make system-deps`` installs it), run
standalone on a free loopback port with its own data directory, and stopped by its pid."""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from pegasus_node.onebox import free_port
from tests.cluster.onebox_harness import kill_pid, wait_pid_gone

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")  # its manifest names the jars it needs
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: the kernel kills it when the test process dies, even by SIGKILL (no teardown
    runs then, and a ZooKeeper server would outlive it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def zookeeper_unavailable() -> str:
    """Why a ZooKeeper server cannot be started here ("" if it can)."""
    if not ZOOKEEPER_JAR.exists():
        return f"{ZOOKEEPER_JAR} is missing: install Debian's zookeeper package (make system-deps)"
    if shutil.which("java") is None:
        return "no java on PATH"
    return ""


class ZooKeeperServer:
    """``netns``: run it in that network namespace (a test host, tests/cluster/netns_hosts.py), on ``address``."""

    def __init__(self, data_dir: Path, tick_ms: int = 200, *, address: str = "127.0.0.1", netns: str = "") -> None:
        self.data_dir = Path(data_dir)
        self.tick_ms = tick_ms  # sessions may last 2 to 20 ticks
        self.address = address
        self.netns = netns
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def hosts(self) -> str:
        return f"{self.address}:{self.port}"

    def start(self, timeout: float = 30.0) -> "ZooKeeperServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port() if not self.netns else 2181
        config = self.data_dir / "zoo.cfg"
        config.write_text(f"tickTime={self.tick_ms}\ndataDir={self.data_dir}\nclientPort={self.port}\n"
                          f"clientPortAddress={self.address}\nadmin.enableServer=false\n"
                          "4lw.commands.whitelist=ruok\n")
        with open(self.data_dir / "zookeeper.out", "ab") as out:
            in_netns = ["ip", "netns", "exec", self.netns] if self.netns else []  # it execs: the pid stays java's
            self.process = subprocess.Popen(
                [*in_netns, "java", "-Xmx256m", "-cp", str(ZOOKEEPER_JAR), MAIN_CLASS, str(config)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._answers():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("ZooKeeper did not start: " + (self.data_dir / "zookeeper.out").read_text()[-2000:])

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.address, self.port), timeout=1) as conn:
                conn.sendall(b"ruok")
                return conn.recv(4) == b"imok"
        except OSError:
            return False

    def kill9(self) -> None:
        if self.process is not None:
            kill_pid(self.process.pid, signal.SIGKILL)
            wait_pid_gone(self.process.pid, 10)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
