"""End to end, as a new user: the real pegasus-shell in a tmux terminal, starting its embedded onebox.

The shell runs from an empty directory with private XDG directories, so it finds no clusters.ini and starts
an embedded onebox (on free ports: PEGASUS_ONEBOX_PORTS=auto). The test types with send-keys and reads the
screen with capture-pane. Whatever happens, the tmux session is killed by name and every onebox process is
stopped by the pids in onebox.json.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.cluster.onebox_harness import kill_pid, pid_alive, wait_pid_gone
from tests.shell.conftest import SHELL

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make system-deps)")


class Tmux:
    def __init__(self, name: str) -> None:
        self.name = name

    def start(self, command: str, width: int = 120, height: int = 40) -> None:
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                        command], check=True)

    def send(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def type(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True)

    def screen(self) -> str:
        proc = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return proc.stdout

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear on the screen within {timeout}s; the screen:\n{screen}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def onebox_pids(data_dir: Path) -> list[int]:
    try:
        manifest = json.loads((data_dir / "onebox.json").read_text())
    except (OSError, ValueError):
        return []
    return [manifest["onebox_pid"], *(p["pid"] for p in manifest["processes"])]


def stop_pids(pids: list[int]) -> None:
    for pid in pids:
        if pid_alive(pid):
            kill_pid(pid, signal.SIGTERM)
    for pid in pids:
        if not wait_pid_gone(pid, 10):
            kill_pid(pid, signal.SIGKILL)
            wait_pid_gone(pid, 5)


@pytest.fixture
def tmux(shell_env, tmp_path):
    session = Tmux(f"pegasus-shell-test-{uuid.uuid4().hex[:10]}")
    data_dir = Path(shell_env["XDG_DATA_HOME"]) / "pegasus-py" / "onebox"
    seen: set[int] = set()
    yield session, data_dir, seen
    session.kill()
    stop_pids(sorted(seen | set(onebox_pids(data_dir))))


def test_new_user_session_with_the_embedded_onebox(tmux, shell_env, tmp_path):
    session, data_dir, seen = tmux
    env = {**shell_env, "PEGASUS_ONEBOX_PORTS": "auto"}
    env.pop("NO_COLOR")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items() if k.startswith(("XDG_", "PEGASUS_")))
    session.start(f"cd {shlex.quote(str(tmp_path / 'cwd'))} && env {exports} {shlex.quote(SHELL)}")

    screen = session.wait_for("onebox>>>", timeout=120)
    seen.update(onebox_pids(data_dir))
    assert "starting an embedded onebox (3 replica servers" in screen
    assert "embedded onebox ready: meta=127.0.0.1:" in screen
    assert "The cluster name is: onebox" in screen

    # Tab completes the command and the table; the prompt then shows the table in use
    session.type("us")
    session.send("Tab")
    session.wait_for("onebox>>> use")
    session.type(" te")
    session.send("Tab")
    session.wait_for("onebox>>> use temp")
    session.send("Enter")
    session.wait_for("OK, using table temp (app_id 1, 8 partitions)")
    session.wait_for("onebox/temp>>>")

    session.type('set "hello world" k "v 1"')
    session.send("Enter")
    session.type('get "hello world" k')
    session.send("Enter")
    screen = session.wait_for('"v 1"')
    assert "Traceback" not in screen

    # the bottom toolbar shows the usage of the command being typed; Ctrl-C drops the line
    session.type("hash_sc")
    session.wait_for("commands: hash_scan")
    session.type("an ")
    session.wait_for("usage: hash_scan HASH_KEY [START_SORT_KEY] [STOP_SORT_KEY]")
    session.send("C-c")
    session.type("nodes")
    session.send("Enter")
    screen = session.wait_for("alive_node_count    :  3")
    assert "hash_scan" not in screen.split("onebox/temp>>> nodes")[1]

    # create waits (with a progress bar) until every partition is healthy; completion then knows the table
    session.type("create e2e -p 2")
    session.send("Enter")
    session.wait_for('create table "e2e" succeeded', timeout=60)
    session.type("partitions e2")
    session.send("Tab")
    session.wait_for("partitions e2e")
    session.send("Enter")
    session.wait_for("fully_healthy_partition_count    :  2")

    # Ctrl-C stops a running command (here: waiting on a node that never answers), not the shell
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        session.type(f"remote-command -n 127.0.0.1:{silent.getsockname()[1]} help")
        session.send("Enter")
        time.sleep(1.0)
        session.send("C-c")
        session.wait_for("error: interrupted", timeout=5)
    session.type("meta-level")
    session.send("Enter")
    session.wait_for("meta level: steady")

    # an error is one line and the session goes on
    session.type("bogus")
    session.send("Enter")
    session.wait_for('error: unknown command "bogus" ("help" lists the commands)')

    # a second shell finds the running embedded onebox, uses it and leaves it running
    second = subprocess.run([SHELL, "-e", "use temp", "-e", 'get "hello world" k'], capture_output=True,
                            text=True, env=env, cwd=tmp_path / "cwd", timeout=60)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == '"v 1"'
    assert "using the embedded onebox already running at 127.0.0.1:" in second.stderr
    pids = onebox_pids(data_dir)
    assert all(pid_alive(pid) for pid in pids)

    # Ctrl-D leaves; the shell stops the onebox it started
    session.send("C-d")
    deadline = time.monotonic() + 30
    while session.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not session.alive()
    for pid in pids:
        assert wait_pid_gone(pid, 20), f"onebox process {pid} still runs after the shell exited"

    history = Path(shell_env["XDG_STATE_HOME"]) / "pegasus" / "history"
    assert "use temp" in history.read_text()
