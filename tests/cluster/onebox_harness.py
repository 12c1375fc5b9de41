"""Run a real onebox (separate OS processes on loopback) for a test, and always clean it up by pid.

The onebox writes ``onebox.json`` with every child's pid and restart command; the harness uses it to
``kill -9`` and restart single processes, and at teardown it stops the onebox and every pid it ever saw,
so no process outlives a failed test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pegasus_node.base.pids import pid_alive

READY_PREFIX = "onebox ready: meta="


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


class Onebox:
    def __init__(self, data_dir: Path, replicas: int = 3, extra_args: list[str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.replicas = replicas
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.meta = ""
        self.known_pids: set[int] = set()
        self.output: list[str] = []
        self._restarted: list[subprocess.Popen] = []

    # ----- lifecycle -----

    def start(self, timeout: float = 90.0) -> "Onebox":
        command = [sys.executable, "-m", "pegasus_node.cli", "onebox", "--data-dir", str(self.data_dir),
                   "--replicas", str(self.replicas), "--free-ports", *self.extra_args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL)
        self.known_pids.add(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line.rstrip())
            if line.startswith(READY_PREFIX):
                self.meta = line[len(READY_PREFIX):].strip()
                self._remember_pids()
                return self
        self._remember_pids()
        self.stop()
        raise RuntimeError("onebox did not become ready:\n" + "\n".join(self.output[-30:]) + self.log_tails())

    def stop(self) -> None:
        """SIGTERM the onebox (it stops its children), then SIGKILL everything still alive."""
        self._remember_pids()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for child in self._restarted:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self._restarted:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for pid in self.known_pids:
            if pid_alive(pid):
                kill_pid(pid)
                wait_pid_gone(pid, 5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    # ----- the manifest -----

    def manifest(self) -> dict:
        return json.loads((self.data_dir / "onebox.json").read_text())

    def _remember_pids(self) -> None:
        try:
            for entry in self.manifest()["processes"]:
                self.known_pids.add(entry["pid"])
        except (OSError, ValueError, KeyError):
            pass

    def process(self, name: str) -> dict:
        for entry in self.manifest()["processes"]:
            if entry["name"] == name:
                return entry
        raise KeyError(name)

    def replica_names(self) -> list[str]:
        return [p["name"] for p in self.manifest()["processes"] if p["role"] == "replica"]

    def address(self, name: str) -> str:
        return self.process(name)["address"]

    # ----- faults -----

    def kill9(self, name: str) -> None:
        entry = self.process(name)
        kill_pid(entry["pid"], signal.SIGKILL)
        assert wait_pid_gone(entry["pid"], 10), f"{name} (pid {entry['pid']}) survived SIGKILL"

    def restart(self, name: str, timeout: float = 30.0) -> int:
        """Start one process again alone with the command from onebox.json; wait until it is ready."""
        entry = self.process(name)
        stdout_path = Path(entry["stdout"])
        offset = stdout_path.stat().st_size if stdout_path.exists() else 0
        with open(stdout_path, "ab") as out:
            child = subprocess.Popen(entry["command"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._restarted.append(child)
        self.known_pids.add(child.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(stdout_path, "rb") as handle:
                handle.seek(offset)
                fresh = handle.read().decode(errors="replace")
            if "ready: role=" in fresh:
                return child.pid
            if child.poll() is not None:
                raise RuntimeError(f"{name} exited with {child.returncode} on restart:\n{fresh[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{name} was not ready within {timeout} s after restart")

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for path in sorted(self.data_dir.glob("*/*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"\n--- {path} ---\n" + "\n".join(text))
        return "".join(out)
