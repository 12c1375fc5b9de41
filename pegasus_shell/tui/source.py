"""Where snapshots come from: the :class:`SnapshotSource` protocol, and :class:`ClusterSource` that polls a
real cluster through the client's :class:`~pegasus_node.client.admin.MetaAdmin`.

One refresh asks the meta server for its nodes, tables, cluster info and new events, then, all at once, the
configuration of every table (for the ``ls -d`` health counts and the selected table's partitions) and the
``replica.status`` of every replica server. Every call has a deadline shorter than the refresh interval, so
a node that stops answering shows as such in the very next snapshot instead of freezing the screen.

MetaAdmin's methods return Deferreds; they are awaited from asyncio code with ``Deferred.asFuture(loop)``
(``pegasus_shell.connection.wait``), which works because Twisted runs on the same asyncio loop as Textual
(``pegasus_node.base.reactor.install_reactor``).
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import replace
from typing import Any, Callable, Protocol

from pegasus_node.errors import PegasusError
from pegasus_shell.connection import wait
from pegasus_shell.health import health_summary, partition_health
from pegasus_shell.tui.model import (
    ROLE_META, ROLE_REPLICA, UNALIVE, EventRow, NodeRow, PartitionRow, Snapshot, TableRow,
)
from pegasus_shell.tui.rates import OpsRates

MAX_EVENTS = 1000


class SnapshotSource(Protocol):
    """Anything that can build a snapshot; the monitor never runs two ``poll`` calls at once."""

    async def poll(self, selected_table: str | None) -> Snapshot:
        """The cluster now, with the partitions of ``selected_table`` (None: the source picks one)."""
        ...


def _message(exc: BaseException) -> str:
    if isinstance(exc, PegasusError):
        return exc.message or exc.code.name
    return f"{type(exc).__name__}: {exc}"


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ClusterSource:
    """Polls a cluster through ``admin``; keeps the state that spans refreshes (rates, events, last tables)."""

    def __init__(self, admin: Any, *, timeout: float = 0.8, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._admin = admin
        self._timeout = timeout
        self._clock = clock
        self._wall = wall
        self._rates = OpsRates()
        self._events: collections.deque[EventRow] = collections.deque(maxlen=MAX_EVENTS)
        self._events_seen = 0
        self._refresh = 0
        self._replica_addresses: tuple[str, ...] = ()  # remembered for when the meta server is unreachable
        self._last_good: Snapshot | None = None

    async def poll(self, selected_table: str | None) -> Snapshot:
        self._refresh += 1
        t = self._timeout
        admin = self._admin
        nodes_r, apps_r, info_r, events_r = await asyncio.gather(
            wait(admin.list_nodes(timeout=t)),
            wait(admin.list_apps("available", timeout=t)),
            wait(admin.cluster_info(timeout=t)),
            self._fetch_events(),
            return_exceptions=True,
        )
        meta_error = next((e for e in (nodes_r, apps_r) if isinstance(e, BaseException)), None)
        info = info_r if isinstance(info_r, dict) else {}
        if isinstance(events_r, dict):
            self._take_events(events_r)
        node_infos = nodes_r["nodes"] if isinstance(nodes_r, dict) else None
        if node_infos is not None:
            self._replica_addresses = tuple(n["address"] for n in node_infos)
        apps = apps_r["apps"] if isinstance(apps_r, dict) else []
        leader = info.get("primary_meta", "")
        other_metas = [m for m in info.get("meta_servers", []) if m != leader]

        configs_r, statuses_r, metas_r = await asyncio.gather(
            asyncio.gather(*(wait(admin.query_config(a["name"], timeout=t)) for a in apps), return_exceptions=True),
            asyncio.gather(*(wait(admin.replica_status(a, timeout=t)) for a in self._replica_addresses),
                           return_exceptions=True),
            asyncio.gather(*(wait(admin.remote_command(m, "server-info", timeout=t)) for m in other_metas),
                           return_exceptions=True),
        )
        now = self._clock()
        statuses = {a: s for a, s in zip(self._replica_addresses, statuses_r) if isinstance(s, dict)}
        nodes = self._node_rows(leader, info, metas_r, other_metas, meta_error is None, node_infos, statuses, now)
        dead = {n.address for n in nodes if n.meta_status == UNALIVE}
        configs = {a["name"]: c for a, c in zip(apps, configs_r) if isinstance(c, dict)}
        tables = tuple(build_table_row(a, configs.get(a["name"]), dead) for a in apps)
        names = [a["name"] for a in apps]
        if selected_table not in names:
            selected_table = names[0] if names else None
        partitions: tuple[PartitionRow, ...] = ()
        if selected_table in configs:
            partitions = build_partition_rows(configs[selected_table], statuses, dead)

        snapshot = Snapshot(
            taken_at=self._wall(),
            refresh=self._refresh,
            meta_address=leader if not meta_error else "",
            nodes=nodes,
            tables=tables,
            selected_table=selected_table,
            partitions=partitions,
            events=tuple(reversed(self._events)),
            meta_level=info.get("meta_level"),
        )
        if meta_error is None:
            self._last_good = snapshot
            return snapshot
        return self._with_stale_tables(snapshot, f"meta server: {_message(meta_error)}")

    def _with_stale_tables(self, snapshot: Snapshot, error: str) -> Snapshot:
        """The meta server did not answer: keep the last tables and partitions we saw, marked stale."""
        last = self._last_good
        if last is None:
            return replace(snapshot, error=error)
        return replace(snapshot, error=error, tables=last.tables, selected_table=last.selected_table,
                       partitions=last.partitions, stale_since=last.taken_at)

    # ----- events -----

    async def _fetch_events(self) -> dict:
        return await wait(self._admin.events(self._events_seen, timeout=self._timeout))

    def _take_events(self, reply: dict) -> None:
        last_seq = reply.get("last_seq", 0)
        for e in reply.get("events", []):
            self._events.append(EventRow(e.get("seq", 0), e.get("time", 0.0), e.get("kind", ""),
                                         e.get("message", "")))
        # A restarted meta server numbers its events from 1 again: start over from its beginning.
        self._events_seen = last_seq if last_seq >= self._events_seen else 0

    # ----- nodes -----

    def _node_rows(self, leader: str, info: dict, metas_r: list, other_metas: list[str], meta_answered: bool,
                   node_infos: list[dict] | None, statuses: dict[str, dict], now: float) -> tuple[NodeRow, ...]:
        rows = []
        for address in info.get("meta_servers") or self._admin.meta_servers:
            if address == leader:
                rows.append(NodeRow(address, ROLE_META, None, True, leader=True))
            elif address in other_metas:
                rows.append(NodeRow(address, ROLE_META, None, isinstance(metas_r[other_metas.index(address)], dict)))
            else:  # cluster_info did not answer: the meta servers answered our other calls, or none did
                rows.append(NodeRow(address, ROLE_META, None, meta_answered))
        by_address = {n["address"]: n for n in node_infos or []}
        for address in self._replica_addresses:
            meta_view = by_address.get(address, {})
            status = statuses.get(address)
            rate = self._rates.update(address, status.get("counters") if status else None, now)
            beacon_age = _int_or_none(meta_view.get("last_beacon_age_ms"))
            rows.append(NodeRow(
                address=address,
                role=ROLE_REPLICA,
                meta_status=meta_view.get("status"),
                reachable=status is not None,
                lease_remaining_ms=_int_or_none(meta_view.get("lease_remaining_ms")),
                last_beacon_age_ms=beacon_age if beacon_age is None or beacon_age >= 0 else None,
                primary_count=_int_or_none(meta_view.get("primary_count")),
                secondary_count=_int_or_none(meta_view.get("secondary_count")),
                ops_per_second=rate,
                ops_history=self._rates.history(address),
            ))
        return tuple(rows)


# ----- tables and partitions -----


def without_dead(partition: dict, dead: set[str]) -> dict:
    """The configuration as it stands once the meta server acts on the dead servers it declared."""
    if not dead:
        return partition
    primary = partition.get("primary") or ""
    return {**partition, "primary": "" if primary in dead else primary,
            "secondaries": [s for s in partition.get("secondaries") or [] if s not in dead]}


def build_table_row(app: dict, config: dict | None, dead: set[str]) -> TableRow:
    row = TableRow(app["app_id"], app["name"], app["status"].removeprefix("AS_"), app["partition_count"],
                   app["replica_count"])
    if config is None:
        return row
    summary = health_summary([without_dead(p, dead) for p in config["partitions"]], app["replica_count"])
    return replace(row, **summary)


def build_partition_rows(config: dict, statuses: dict[str, dict], dead: set[str]) -> tuple[PartitionRow, ...]:
    replica_count, app_id = config["app"]["replica_count"], config["app"]["app_id"]
    hosted: dict[tuple[str, int], dict] = {}  # (address, partition index) -> that replica's report
    for address, status in statuses.items():
        for entry in status.get("replicas", []):
            gpid = entry.get("gpid")
            if isinstance(gpid, list) and len(gpid) == 2 and gpid[0] == app_id:
                hosted[(address, gpid[1])] = entry
    rows = []
    for p in config["partitions"]:
        gpid = (p["gpid"][0], p["gpid"][1])
        primary = p.get("primary") or ""
        report = hosted.get((primary, gpid[1]), {})  # what the primary itself says about this partition
        lease = _int_or_none(report.get("primary_lease_remaining_ms"))
        if lease is None and primary in statuses:  # leases are per server: the primary's server lease
            lease = _int_or_none(statuses[primary].get("lease_remaining_ms"))
        committed = _int_or_none(report.get("last_committed_decree"))
        learners = tuple(p.get("learners") or ())
        rows.append(PartitionRow(
            gpid=gpid,
            ballot=p.get("ballot", 0),
            primary=primary,
            secondaries=tuple(p.get("secondaries") or ()),
            learners=learners,
            health=partition_health(without_dead(p, dead), replica_count),
            last_committed_decree=committed if committed is not None else _int_or_none(p.get("last_committed_decree")),
            last_prepared_decree=_int_or_none(report.get("last_prepared_decree")),
            pending_mutations=_int_or_none(report.get("pending_mutations")),
            queued_writes=_int_or_none(report.get("queued_writes")),
            primary_lease_remaining_ms=lease,
            learner_progress=tuple(learner_progress(hosted.get((learner, gpid[1])), committed)
                                   for learner in learners),
        ))
    return tuple(rows)


def learner_progress(report: dict | None, primary_committed: int | None) -> str:
    """What a learner's own ``replica.status`` entry says of its catch-up: installing or fetching a
    checkpoint (with the share fetched), or the decree it has reached."""
    if not report:
        return ""
    if report.get("installing_checkpoint"):
        return "installing checkpoint"
    for key, suffix in (("checkpoint_download", ""), ("checkpoint_download_interrupted", ", interrupted")):
        download = report.get(key)
        if isinstance(download, dict):
            done, size = _int_or_none(download.get("bytes_done")), _int_or_none(download.get("bytes"))
            share = f" {done * 100 // size}%" if done is not None and size else ""
            return f"checkpoint{share}{suffix}"
    reached = _int_or_none(report.get("last_committed_decree"))
    if reached is None:
        return ""
    return f"decree {reached}" + (f"/{primary_committed}" if primary_committed is not None else "")
