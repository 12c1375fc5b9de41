"""Deleting the directories of replicas that the meta server no longer assigns to this server.

When the balancer moves a replica away, or the meta server removes a failed secondary and re-creates it
elsewhere, the replica server closes the replica but its directory (``DATA_DIR/replica/{app_id}.{pidx}``)
stays: it may be assigned back (and then learns only what it missed), or an operator may need it. Like
Apache Pegasus (``gc_disk_garbage_replica_interval_seconds``), such a directory is kept as garbage for a
grace period and then deleted, so that a server of a balancing cluster does not fill its disk with stale
copies.

What is kept:

* A directory of a dropped table. It is no longer assigned anywhere, yet it can be recalled for
  ``hold_seconds_for_dropped_app`` (or the ``drop`` command's own reserve time), which the replica server
  does not know; its directories are deleted when the meta server purges it (``purged_app_ids`` in the
  beacon reply). The beacon reply also lists the available tables (``available_app_ids``), so a table moved
  entirely off this server is garbage like any other unassigned replica. From a meta server that does not
  send that list, a table with nothing hosted here is kept whole: losing a recallable table is worse than
  keeping a stale copy.
* A directory whose storage engine is still open (a closing replica finishing its last writes): the
  engine holds an flock on its LOCK file.
* Anything not named ``{int}.{int}``.

The clock lives in memory only: after a restart every unassigned directory waits the full grace period
again. That may delay a deletion, never hasten one.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from twisted.logger import Logger

from pegasus_node.replica.replica_dir import remove_replica_dir, replica_dir
from pegasus_node.storage.errors import StorageError
from pegasus_node.storage.fsutil import lock_directory
from pegasus_node.twisted_rpc import RateLimitedLog

log = Logger(namespace="pegasus.replica_gc")

# Exactly the names ``replica_dir`` makes: no sign, no leading zeros, no suffix (``1.0.tmp`` is not ours).
REPLICA_DIR_NAME = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")

Gpid = tuple[int, int]


class UnassignedReplicaCollector:
    def __init__(self, data_dir: str | Path, grace_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = replica_dir(data_dir, 0, 0).parent
        self.grace_seconds = grace_seconds
        self._clock = clock
        # Called after every beacon (once a second): a directory that cannot be removed, or is still open,
        # would otherwise log a line each time.
        self._limited_log = RateLimitedLog(log, interval=600.0, clock=clock)
        # gpid -> clock() when its directory was first seen unassigned (since the last time it was hosted)
        self._unhosted_since: dict[Gpid, float] = {}

    def collect(self, hosted: Iterable[Gpid], available_app_ids: Iterable[int] | None = None) -> list[Path]:
        """Call with every gpid hosted here, when that set is the meta server's full view (after a beacon),
        and the ids of the tables that are available (not dropped), if the meta server said. Returns the
        directories removed. Filesystem errors are logged, never raised."""
        hosted = set(hosted)
        # The tables whose unhosted directories are garbage: certainly not dropped ones.
        live_apps = {app_id for app_id, _ in hosted} | set(available_app_ids or ())
        now = self._clock()
        candidates = {gpid: path for gpid, path in self._scan().items()
                      if gpid not in hosted and gpid[0] in live_apps}
        # Forget what is hosted again, gone, or of a table with nothing here: its clock starts over.
        self._unhosted_since = {gpid: since for gpid, since in self._unhosted_since.items() if gpid in candidates}
        removed = []
        for gpid, path in sorted(candidates.items()):
            since = self._unhosted_since.get(gpid)
            if since is None:
                since = self._unhosted_since[gpid] = now
                log.info("replica {gpid} is no longer assigned to this server: its directory {path} will be "
                         "removed in {grace:g} s unless it is assigned back (gc_unassigned_replica_seconds)",
                         gpid=_name(gpid), path=str(path), grace=self.grace_seconds)
            if now - since >= self.grace_seconds and self._remove(gpid, path, now - since):
                del self._unhosted_since[gpid]
                removed.append(path)
        return removed

    def _scan(self) -> dict[Gpid, Path]:
        found = {}
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    match = REPLICA_DIR_NAME.fullmatch(entry.name)
                    # A symlink is not a directory we made: leave it (and what it points to) alone.
                    if match and entry.is_dir(follow_symlinks=False):
                        found[(int(match[1]), int(match[2]))] = Path(entry.path)
        except FileNotFoundError:
            pass  # no replica was ever hosted here
        except OSError as exc:
            self._limited_log.warn("scan", "cannot list replica directories in {root}: {error}",
                                   root=str(self.root), error=exc)
        return found

    def _remove(self, gpid: Gpid, path: Path, unhosted_for: float) -> bool:
        """Remove ``path`` unless its storage engine is still open; True when it is gone."""
        try:
            # Held (briefly, by us) while removing, so that no engine can open the directory meanwhile.
            lock_fd = lock_directory(path, "engine")
        except StorageError:
            self._limited_log.info(("open", gpid), "replica directory {path} is unassigned but its storage "
                                   "engine is still open: not removed yet", path=str(path))
            return False
        except FileNotFoundError:
            return False  # removed meanwhile by someone else: the next scan will not list it
        except OSError as exc:
            self._limited_log.warn(("remove", gpid), "cannot remove unassigned replica directory {path}: "
                                   "{error}", path=str(path), error=exc)
            return False
        try:
            remove_replica_dir(path)
        finally:
            os.close(lock_fd)
        if path.exists():
            # remove_replica_dir ignores errors; what is left is retried at the next call.
            self._limited_log.warn(("remove", gpid), "unassigned replica directory {path} could not be "
                                   "removed completely (check its permissions)", path=str(path))
            return False
        log.info("removed the directory {path} of replica {gpid}: not assigned to this server for {seconds:.0f} s "
                 "(gc_unassigned_replica_seconds = {grace:g})", path=str(path), gpid=_name(gpid),
                 seconds=unhosted_for, grace=self.grace_seconds)
        return True


def _name(gpid: Gpid) -> str:
    return f"{gpid[0]}.{gpid[1]}"
