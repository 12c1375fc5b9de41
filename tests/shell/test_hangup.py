"""A shell whose terminal goes away (SIGHUP, the pty closed) exits instead of lingering."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_shell_exits_when_its_terminal_hangs_up(onebox, shell_env, tmp_path, sig):
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "pegasus_shell.main", "-m", onebox.meta], stdin=slave,
                               stdout=slave, stderr=slave, env=shell_env, cwd=tmp_path,
                               start_new_session=True)
    os.close(slave)
    try:
        deadline = time.monotonic() + 30
        seen = b""
        while b">>>" not in seen and time.monotonic() < deadline:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
        assert b">>>" in seen, seen[-500:]
        os.close(master)  # the terminal is gone ...
        process.send_signal(sig)  # ... and the kernel's hangup (or a plain TERM) arrives
        assert process.wait(10) == 130
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
