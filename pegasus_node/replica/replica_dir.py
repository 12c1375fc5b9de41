"""Where a hosted replica lives on disk (``<data dir>/replica/<app_id>.<pidx>``), and its ballot file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BALLOT_FILE = "ballot"


def replica_dir(data_dir: str | Path, app_id: int, pidx: int) -> Path:
    return Path(data_dir) / "replica" / f"{app_id}.{pidx}"


def remove_replica_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def read_ballot(directory: Path) -> int:
    try:
        return int((directory / BALLOT_FILE).read_text().strip() or 0)
    except FileNotFoundError:
        return 0


def write_ballot(directory: Path, ballot: int, fsync: bool) -> None:
    """Atomically and durably: a restarted replica must never be primary again at a ballot it used."""
    tmp = directory / (BALLOT_FILE + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(str(ballot))
        handle.flush()
        if fsync:
            os.fsync(handle.fileno())
    os.replace(tmp, directory / BALLOT_FILE)
    if fsync:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
