"""The meta server's duplications (seed 002): added, listed, paused, started, removed, and their progress.

Each is persisted at ``/apps/<app_id>/duplication/<dupid>`` before it is announced. Replica servers learn
them from beacon replies; each partition's primary ships its writes and reports, in its beacons, the decree
up to which the remote cluster has them (``confirmed``). That progress is persisted at the next tick, so a new
primary (or a new meta leader) resumes from it: at worst some writes are shipped twice, which the remote side
ignores (they carry the same timetag, and it applies a shipped write only over an older one).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from twisted.logger import Logger

from pegasus_node.duplication.entry import DS_LOG, DS_PREPARE, DS_REMOVED, DuplicationEntry, fail_mode_arg
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.meta.model import AS_AVAILABLE

if TYPE_CHECKING:
    from pegasus_node.meta.server import MetaServer

log = Logger(namespace="pegasus.meta.duplication")


async def _remote_table_exists(remote, name: str, cluster: str, metas: str) -> bool:
    try:
        await remote.query_config(name)
    except PegasusError as exc:
        if exc.code in (ErrorCode.ERR_OBJECT_NOT_FOUND, ErrorCode.ERR_APP_NOT_EXIST):
            return False
        raise
    return True


async def _until_every_partition_has_a_primary(remote, name: str, timeout: float = 30.0) -> None:
    """A table just created on the remote cluster: shipping starts once it can take writes (or after timeout,
    when the duplicators' fail mode decides)."""
    from twisted.internet import reactor, task

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partitions = (await remote.query_config(name))["partitions"]
        if all(p["primary"] for p in partitions):
            return
        await task.deferLater(reactor, 0.2, lambda: None)


def _path(app_id: int, dupid: int) -> str:
    return f"/apps/{app_id}/duplication/{dupid}"


class MetaDuplications:
    def __init__(self, meta: "MetaServer") -> None:
        self.meta = meta
        self.entries: dict[int, dict[int, DuplicationEntry]] = {}  # app_id -> dupid -> entry
        self._unsaved: set[tuple[int, int]] = set()  # (app_id, dupid) whose progress moved since the last save

    def load(self) -> None:
        for app_id in self.meta.apps:
            for name in self.meta.store.children(f"/apps/{app_id}/duplication"):
                raw = self.meta.store.get(_path(app_id, int(name)))
                if raw is not None:
                    entry = DuplicationEntry.decode(raw)
                    self.entries.setdefault(app_id, {})[entry.dupid] = entry

    def _of(self, app_name: str) -> tuple[object, dict[int, DuplicationEntry]]:
        app = self.meta._require_app(app_name)
        return app, self.entries.setdefault(app.app_id, {})

    def _save(self, entry: DuplicationEntry) -> None:
        self.meta.store.put(_path(entry.app_id, entry.dupid), entry.encode())
        self.entries.setdefault(entry.app_id, {})[entry.dupid] = entry
        self._unsaved.discard((entry.app_id, entry.dupid))

    # ----- the operator's calls -----

    def check_can_add(self, app_name: str, remote: str) -> tuple[int, str]:
        """(app_id, the remote's meta list), or PegasusError saying what is missing."""
        config = self.meta.config
        if not config.duplication_enabled:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, "duplication is disabled on this cluster "
                               "([replication] duplication_enabled = false)")
        app, entries = self._of(app_name)
        metas = config.remote_clusters.get(remote)
        if metas is None:
            known = ", ".join(sorted(config.remote_clusters)) or "none"
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS,
                               f"cluster {remote!r} is not in [pegasus.clusters] of the meta servers (known: "
                               f"{known}); add it there with its meta list")
        if remote == config.cluster_name:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, f"{remote} is this cluster")
        missing = [name for name in (config.cluster_name, remote) if name not in config.duplication_group]
        if not config.cluster_name or missing:
            raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS,
                               "both clusters need a cluster id in [duplication-group] (and this one its name in "
                               f"[pegasus.server] cluster_name); missing: {', '.join(missing) or 'cluster_name'}")
        if any(e.remote == remote and e.status != DS_REMOVED for e in entries.values()):
            raise PegasusError(ErrorCode.ERR_DUP_EXIST, f"table {app_name} already duplicates to {remote}")
        return app.app_id, metas

    def add(self, app_name: str, remote: str, fail_mode: str, *, full: bool = False) -> DuplicationEntry:
        """Incremental: from each partition's last committed decree the meta server knows (a beacon old). Full:
        each partition's confirmed decree is -1, which has its primary copy its records first."""
        app_id, _ = self.check_can_add(app_name, remote)
        existing = self.entries.get(app_id, {})
        dupid = max([int(time.time()), *(d + 1 for d in existing)])
        partition_count = len(self.meta.partitions[app_id])
        unheard = [p for p in range(partition_count) if (app_id, p) not in self.meta.committed]
        if unheard and not full:
            # Starting those at decree 0 would ask for writes the WAL may no longer hold.
            raise PegasusError(ErrorCode.ERR_TRY_AGAIN, f"the primaries of partitions {unheard[:8]} of {app_name} have "
                               "not reported their commit point to this meta server yet; try again in a few seconds")
        confirmed = {p: -1 if full else self.meta.committed[(app_id, p)] for p in range(partition_count)}
        entry = DuplicationEntry(dupid, app_id, remote, DS_LOG, fail_mode, int(time.time() * 1000), confirmed)
        self._save(entry)
        self.meta.record_event("duplication_added", f"table {app_name} duplicates to {remote} (dupid {dupid})",
                               app_id=app_id, dupid=dupid, remote=remote)
        return entry

    def describe(self, app_name: str) -> dict:
        app, entries = self._of(app_name)
        return {"app_name": app.name, "app_id": app.app_id,
                "duplications": [self.view(e) for _, e in sorted(entries.items())]}

    def view(self, entry: DuplicationEntry) -> dict:
        """An entry as operators see it: with how far each partition lags behind its commit point, and as
        DS_PREPARE while a full duplication still copies the records of some partition."""
        lag = {p: max(0, self.meta.committed.get((entry.app_id, p), 0) - max(d, 0)) for p, d in entry.confirmed.items()}
        view = {**entry.to_dict(), "pending_mutations": sum(lag.values())}
        if entry.status == DS_LOG and any(d < 0 for d in entry.confirmed.values()):
            view["status"] = DS_PREPARE
        return view

    def modify(self, app_name: str, dupid: int, *, status: str | None = None,
               fail_mode: str | None = None) -> DuplicationEntry:
        app, entries = self._of(app_name)
        entry = entries.get(dupid)
        if entry is None or entry.status == DS_REMOVED:
            raise PegasusError(ErrorCode.ERR_OBJECT_NOT_FOUND, f"table {app_name} has no duplication {dupid} "
                               "('dup list' shows them)")
        # Every move between DS_LOG and DS_PAUSE, and from either to DS_REMOVED, is allowed (pausing a paused
        # duplication changes nothing): incremental duplication has no earlier states to guard.
        changed = replace(entry, status=status or entry.status,
                          fail_mode=fail_mode_arg(fail_mode) if fail_mode is not None else entry.fail_mode)
        if changed.status == DS_REMOVED:
            # Its unsent writes are dropped with it: nothing keeps the WAL for it any more.
            self.meta.store.delete(_path(app.app_id, dupid))
            del entries[dupid]
            self._unsaved.discard((app.app_id, dupid))
        else:
            self._save(changed)
        self.meta.record_event("duplication_changed", f"duplication {dupid} of {app_name}: {changed.status}, "
                               f"{changed.fail_mode}", app_id=app.app_id, dupid=dupid, status=changed.status)
        return changed

    # ----- replica servers -----

    def for_beacon(self) -> list[dict]:
        """Every duplication of an available table, with the remote's meta list, for the replica servers."""
        found = []
        for app_id, entries in self.entries.items():
            app = self.meta.apps.get(app_id)
            if app is None or app.status != AS_AVAILABLE:
                continue
            for entry in entries.values():
                metas = self.meta.config.remote_clusters.get(entry.remote, "")
                found.append({**entry.to_dict(), "app_name": app.name, "remote_metas": metas})
        return found

    def on_progress(self, address: str, progress: list) -> None:
        """``[[app_id, partition_index, dupid, confirmed], ...]`` from a replica server's beacon; only a
        partition's current primary moves its progress, and only forward."""
        for item in progress:
            if not (isinstance(item, list) and len(item) == 4 and all(type(x) is int for x in item)):
                log.warn("ignoring malformed duplication progress from {a}: {item!r}", a=address, item=item)
                continue
            app_id, pidx, dupid, decree = item
            entry = self.entries.get(app_id, {}).get(dupid)
            config = self.meta._config((app_id, pidx))
            if entry is None or config is None or config.primary != address:
                continue
            if decree > entry.confirmed.get(pidx, 0):
                self.entries[app_id][dupid] = entry.with_confirmed(pidx, decree)
                self._unsaved.add((app_id, dupid))

    def save_progress(self) -> None:
        for app_id, dupid in sorted(self._unsaved):
            entry = self.entries.get(app_id, {}).get(dupid)
            if entry is not None and app_id in self.meta.apps:  # a purged table's entries went with it
                self._save(entry)
        self._unsaved.clear()

    # ----- the operator's add, with the remote cluster asked first -----

    async def add_checked(self, name: str, cluster: str, fail_mode: str, full: bool) -> DuplicationEntry:
        """After asking the remote cluster for the table: an incremental duplication needs it there; a full one
        creates it there (it must not exist yet), with this table's partition and replica counts."""
        from pegasus_node.client.admin import MetaAdmin

        fail_mode = fail_mode_arg(fail_mode)
        app_id, metas = self.check_can_add(name, cluster)
        app = self.meta.apps[app_id]
        remote = MetaAdmin(metas, timeout=10.0)
        try:
            exists = await _remote_table_exists(remote, name, cluster, metas)
            if full and exists:
                raise PegasusError(ErrorCode.ERR_APP_EXIST, f"cluster {cluster} already has a table {name}: a full "
                                   "duplication creates it; drop it there, or add an incremental duplication "
                                   "(without -p)")
            if not full and not exists:
                raise PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, f"cluster {cluster} has no table {name}: create "
                                   "it there first (its partition count may differ), or add a full duplication (-p)")
            if full:
                await remote.create_app(name, app.partition_count, app.replica_count)
                await _until_every_partition_has_a_primary(remote, name)
        except PegasusError as exc:
            if exc.code in (ErrorCode.ERR_INVALID_STATE, ErrorCode.ERR_TIMEOUT, ErrorCode.ERR_NETWORK_FAILURE):
                # Not the remote's own code: those would send our caller on to another meta server of ours.
                raise PegasusError(ErrorCode.ERR_TRY_AGAIN, f"cluster {cluster} ({metas}): {exc.message}; check it, "
                                   "then try again") from None
            raise
        finally:
            await remote.close()
        return self.add(name, cluster, fail_mode, full=full)
