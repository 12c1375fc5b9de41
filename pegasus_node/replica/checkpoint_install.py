"""The slow half of installing a learned checkpoint, on a worker thread (partition.py holds the core's later
effects until it ends).

A checkpoint may hold gigabytes: verifying it, copying it in durably and building its memtable would stall the
reactor, and with it the server's beacons (so its lease) and every other replica it hosts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, threads
from twisted.logger import Logger

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.replica.checkpoint_download import DownloadedCheckpoint
from pegasus_node.storage.engine import InstalledCheckpoint, StorageEngine

log = Logger(namespace="pegasus.replica")

Outcome = tuple[InstalledCheckpoint | None, PegasusError | None]


def load_in_thread(engine: StorageEngine, directory: Path, checkpoint: DownloadedCheckpoint | bytes,
                   gpid: Any) -> defer.Deferred:
    """Fires with ``(installed, None)`` or ``(None, error)``; never fails. ``checkpoint`` is a fetched file,
    or the inline bytes of a primary that predates chunked transfers (written to a temporary file first)."""

    def load() -> Outcome:
        downloaded = isinstance(checkpoint, DownloadedCheckpoint)
        path = checkpoint.path if downloaded else None
        try:
            if path is None:
                with tempfile.NamedTemporaryFile(dir=directory, suffix=".learn", delete=False) as handle:
                    path = Path(handle.name)
                    handle.write(checkpoint)
            return engine.load_checkpoint_to_install(path), None
        except PegasusError as exc:
            return None, exc
        except OSError as exc:  # writing the inline bytes down (a full disk, say)
            return None, PegasusError(ErrorCode.ERR_DISK_IO, f"cannot write it to {directory}: {exc.strerror or exc}")
        finally:
            if not downloaded and path is not None:
                path.unlink(missing_ok=True)

    def crashed(failure) -> Outcome:
        log.failure("replica {gpid}: installing a learned checkpoint crashed", failure, gpid=gpid)
        return None, PegasusError(ErrorCode.ERR_DISK_IO, failure.getErrorMessage())

    return threads.deferToThread(load).addErrback(crashed)
