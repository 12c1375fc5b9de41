"""The monitor in a tmux pane on a private tmux server (nothing touches the user's own tmux): start it, read
the screen, press keys, and stop it (and the monitor process) by pid."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

from tests.cluster.onebox_harness import kill_pid, wait_pid_gone

REPO = Path(__file__).resolve().parents[2]


class Pane:
    """One tmux session on its own server socket, running ``command`` from the repository root."""

    def __init__(self, command: list[str], width: int = 80, height: int = 24) -> None:
        self.socket = f"pegasus-tui-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.session = "monitor"
        env = {"TERM": "xterm-256color", "PYTHONPATH": str(REPO)}
        env_args = [f"{k}={v}" for k, v in env.items()]
        self._tmux("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height),
                   "env", *env_args, *command)
        pane_pid, socket_path = self._tmux("display-message", "-p", "-t", self.session,
                                           "#{pane_pid} #{socket_path}").split()
        self.pid, self.socket_path = int(pane_pid), Path(socket_path)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              cwd=REPO).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session)

    def press(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.session, *keys)

    def alive(self) -> bool:
        result = subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", self.session], capture_output=True)
        return result.returncode == 0

    def wait_for(self, predicate, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not on screen within {timeout:.1f} s; screen:\n{text}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
        if not wait_pid_gone(self.pid, 5):
            kill_pid(self.pid)
            wait_pid_gone(self.pid, 5)
        self.socket_path.unlink(missing_ok=True)
