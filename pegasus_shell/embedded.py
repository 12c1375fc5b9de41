"""The embedded onebox: what a plain ``pegasus-shell`` starts when no cluster answers.

It runs ``pegasus-node onebox`` (a meta server and 3 replica servers, separate processes on 127.0.0.1)
with its data under ``$XDG_DATA_HOME/pegasus-py/onebox``, on the default ports when they are free and on
free ports otherwise (or always, with ``PEGASUS_ONEBOX_PORTS=auto``). A onebox already running there is
reused and left running; one the shell started is stopped when the shell exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from pegasus_node.base.pids import pid_alive
from pegasus_shell.config import xdg_dir
from pegasus_shell.connection import any_meta_accepts
from pegasus_shell.errors import ShellError

DEFAULT_PORTS = (34601, 34801, 34802, 34803)
REPLICA_SERVERS = 3
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0
READY_PREFIX = "onebox ready: meta="
PORTS_ENV = "PEGASUS_ONEBOX_PORTS"


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _is_pegasus_process(pid: int) -> bool:
    """Guards against a pid reused by an unrelated process since the manifest was written."""
    try:
        return b"pegasus_node" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def manifest_pids(data_dir: Path) -> list[int]:
    """Every pid ``onebox.json`` names: the onebox supervisor and its processes."""
    try:
        manifest = json.loads((data_dir / "onebox.json").read_text())
    except (OSError, ValueError):
        return []
    pids = [manifest.get("onebox_pid")] + [p.get("pid") for p in manifest.get("processes", [])]
    return [int(p) for p in pids if isinstance(p, int) and p > 0]


class EmbeddedOnebox:
    CLUSTER_NAME = "onebox"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: subprocess.Popen | None = None
        self.meta_address: str | None = None

    @classmethod
    def default(cls) -> "EmbeddedOnebox":
        return cls(xdg_dir("DATA") / "pegasus-py" / "onebox")

    @property
    def started_here(self) -> bool:
        return self.process is not None

    @property
    def output_path(self) -> Path:
        return self.data_dir / "shell-onebox.out"

    def _running_meta(self) -> str | None:
        """The meta address of a onebox already running on this data dir, if one answers."""
        try:
            manifest = json.loads((self.data_dir / "onebox.json").read_text())
        except (OSError, ValueError):
            return None
        meta, pid = manifest.get("meta"), manifest.get("onebox_pid")
        if not isinstance(meta, str) or not isinstance(pid, int) or not pid_alive(pid):
            return None
        return meta if any_meta_accepts([meta]) else None

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "pegasus_node.cli", "onebox", "--data-dir", str(self.data_dir),
                   "--replicas", str(REPLICA_SERVERS)]
        first_run = not (self.data_dir / "onebox.json").exists()
        auto = os.environ.get(PORTS_ENV, "").lower() == "auto"
        if first_run and (auto or any(_port_busy(p) for p in DEFAULT_PORTS)):
            command.append("--free-ports")
        return command

    async def attach_or_start(self, notice: Callable[[str], None]) -> str:
        running = await asyncio.to_thread(self._running_meta)
        if running is not None:
            notice(f"using the embedded onebox already running at {running} (data in {self.data_dir})")
            self.meta_address = running
            return running
        self.data_dir.mkdir(parents=True, exist_ok=True)
        notice(f"no cluster configured or answering: starting an embedded onebox ({REPLICA_SERVERS} replica "
               f"servers, data in {self.data_dir})...")
        with open(self.output_path, "wb") as out:
            # its own session: a Ctrl-C at the shell's terminal must not reach the cluster
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self.meta_address = await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        notice(f"embedded onebox ready: meta={self.meta_address}; it stops when the shell exits")
        return self.meta_address

    async def _wait_ready(self) -> str:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            text = self.output_path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX):].strip()
            if self.process.poll() is not None:
                tail = " | ".join(text.strip().splitlines()[-3:]) or "no output"
                raise ShellError(f"the embedded onebox exited with code {self.process.returncode}: {tail} "
                                 f"(see {self.output_path})", "ERR_ONEBOX")
            if time.monotonic() > deadline:
                raise ShellError(f"the embedded onebox was not ready within {READY_TIMEOUT_SECONDS:.0f}s "
                                 f"(see {self.output_path})", "ERR_ONEBOX")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """SIGTERM the onebox (it stops its processes), SIGKILL whatever is left after a timeout."""
        process, self.process = self.process, None
        if process is None:
            return
        leftovers = manifest_pids(self.data_dir)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in leftovers:
            if pid != process.pid and pid_alive(pid) and _is_pegasus_process(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
