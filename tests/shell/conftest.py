"""Fixtures for the shell tests: a real onebox, and the real ``pegasus-shell`` run as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.onebox_harness import Onebox

SHELL = str(Path(sys.executable).parent / "pegasus-shell")


@pytest.fixture(scope="session")
def onebox(tmp_path_factory):
    """One onebox (meta + 3 replica servers, free ports) for the shell tests; stopped by pid at the end."""
    box = Onebox(tmp_path_factory.mktemp("shell_onebox") / "box", replicas=3)
    try:
        box.start()
        yield box
    finally:
        box.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ShellRun:
    code: int
    out: str
    err: str

    @property
    def out_lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture
def shell_env(tmp_path) -> dict[str, str]:
    """An environment with no clusters.ini to find and private XDG directories."""
    for sub in ("config", "data", "state", "cwd"):
        (tmp_path / sub).mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PEGASUS_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_STATE_HOME=str(tmp_path / "state"), NO_COLOR="1")
    return env


@pytest.fixture
def shell(shell_env, tmp_path):
    """Run the real pegasus-shell: shell(*args, stdin=None) -> ShellRun."""

    def run(*args: str, stdin: str | None = None, timeout: float = 60) -> ShellRun:
        proc = subprocess.run([SHELL, *args], input=stdin if stdin is not None else "", capture_output=True,
                              text=True, env=shell_env, cwd=tmp_path / "cwd", timeout=timeout)
        return ShellRun(proc.returncode, proc.stdout, proc.stderr)

    return run
