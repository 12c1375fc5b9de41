"""The replica server's duplications: a duplicator for each partition it leads that duplicates (DS_LOG).

The beacon reply carries every duplication of the cluster with each partition's confirmed decree (the meta
server's). ``sync`` starts a duplicator where this server is the partition's primary and stops the others
(a paused, removed or failed-over one). ``progress`` goes back in the next beacon. Every replica of a
duplicated partition, primary or not, keeps its WAL after the lowest confirmed decree (``gc_floor``): a
secondary promoted later must still hold what is not yet shipped.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from pegasus_node.duplication import metrics
from pegasus_node.duplication.duplicator import PartitionDuplicator
from pegasus_node.duplication.entry import DS_LOG, DuplicationEntry
from pegasus_node.replication.config import PartitionStatus

log = Logger(namespace="pegasus.duplication")


class ServerDuplications:
    def __init__(self, replicas: dict, cluster_id: int, enabled: bool, reactor: Any, *,
                 lagging_threshold_ms: int = 10_000) -> None:
        self._replicas = replicas  # the server's gpid -> PartitionReplica, kept current by the server
        self._cluster_id = cluster_id
        self._lagging_threshold_ms = lagging_threshold_ms
        self._enabled = enabled
        self._reactor = reactor
        self.duplicators: dict[tuple[tuple[int, int], int], PartitionDuplicator] = {}  # (gpid, dupid) ->
        self._floors: dict[tuple[int, int], int] = {}
        self._clients: dict[str, Any] = {}  # remote meta list -> Client
        metrics.watch(self)

    def sync(self, duplications: list) -> None:
        entries, metas, names = [], {}, {}
        for raw in duplications:
            try:
                entry = DuplicationEntry.from_dict(raw)
            except (KeyError, TypeError, ValueError) as exc:
                log.warn("ignoring a malformed duplication from the meta server: {e}", e=exc)
                continue
            entries.append(entry)
            key = (entry.app_id, entry.dupid)  # dupids are unique within a table only
            metas[key] = str(raw.get("remote_metas", ""))
            names[key] = str(raw.get("app_name", ""))
        self._floors = {}
        wanted = {}
        for entry in entries:
            for gpid, replica in self._replicas.items():
                if gpid[0] != entry.app_id:
                    continue
                confirmed = entry.confirmed.get(gpid[1], 0)
                self._floors[gpid] = min(self._floors.get(gpid, confirmed), confirmed)
                core = replica.core
                if (self._enabled and entry.status == DS_LOG and core is not None
                        and core.status is PartitionStatus.PRIMARY and metas[(entry.app_id, entry.dupid)]):
                    wanted[(gpid, entry.dupid)] = (entry, confirmed)
        for key in [k for k in self.duplicators if k not in wanted]:
            self.duplicators.pop(key).stop()
        for (gpid, dupid), (entry, confirmed) in wanted.items():
            duplicator = self.duplicators.get((gpid, dupid))
            if duplicator is not None and duplicator.replica is self._replicas[gpid]:
                duplicator.fail_mode = entry.fail_mode
                continue
            if duplicator is not None:
                duplicator.stop()
            duplicator = PartitionDuplicator(self._replicas[gpid], dupid, confirmed, entry.fail_mode,
                                             self._cluster_id, self._table_opener(metas[(gpid[0], dupid)],
                                                                                  names[(gpid[0], dupid)]),
                                             self._reactor, lagging_threshold_ms=self._lagging_threshold_ms)
            self.duplicators[(gpid, dupid)] = duplicator
            duplicator.start()
            log.info("duplicating {gpid} (dupid {dupid}) to {remote} from decree {d}", gpid=gpid, dupid=dupid,
                     remote=entry.remote, d=confirmed)

    def _table_opener(self, remote_metas: str, app_name: str):
        def open_table():
            from pegasus_node.client import Client

            client = self._clients.get(remote_metas)
            if client is None:
                client = self._clients[remote_metas] = Client(remote_metas, reactor=self._reactor, timeout=5.0)
            return client.open_table(app_name)
        return open_table

    def gc_floor(self, gpid: tuple[int, int]) -> int | None:
        """The highest decree this replica's WAL may drop (None: no duplication constrains it)."""
        floor = self._floors.get(gpid)
        for (dup_gpid, _), duplicator in self.duplicators.items():
            if dup_gpid == gpid and (floor is None or duplicator.confirmed < floor):
                floor = duplicator.confirmed
        return floor

    def progress(self) -> list[list[int]]:
        return [[gpid[0], gpid[1], dupid, d.confirmed] for (gpid, dupid), d in self.duplicators.items()]

    def status(self, app_id: int | None = None) -> list[dict]:
        return [d.status() for (gpid, _), d in sorted(self.duplicators.items())
                if app_id is None or gpid[0] == app_id]

    @defer.inlineCallbacks
    def stop(self):
        for duplicator in self.duplicators.values():
            duplicator.stop()
        self.duplicators.clear()
        for client in self._clients.values():
            yield client.close()
        self._clients.clear()
