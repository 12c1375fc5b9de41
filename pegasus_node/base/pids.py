"""Whether a process still runs, for the tools that stop processes by pid (onebox, shell, tests)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while the process runs. A zombie (dead, not yet reaped by its parent) counts as gone; one that
    is our own child is reaped here."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):
        return False
