"""What the monitor shows: one immutable snapshot of the cluster per refresh.

Field names follow docs/rpc.md. A field the cluster does not report (yet) is ``None`` and shows as "-":
the replication fields (last prepared decree, pending and queued mutations, a replica's own primary lease)
appear as soon as the replica servers report them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Node status as shown: the meta server's verdict, unless the node itself did not answer us.
ALIVE = "alive"
UNALIVE = "unalive"
NO_ANSWER = "no answer"  # the meta server still counts it alive (within grace), but it did not answer us
ANSWERS = "answers"  # the meta server is unreachable, but the node answered us

ROLE_META = "meta"
ROLE_REPLICA = "replica"


@dataclass(frozen=True)
class NodeRow:
    address: str
    role: str
    meta_status: str | None  # "alive" | "unalive" from meta.list_nodes; None when the meta did not say
    reachable: bool  # answered this refresh's status call
    lease_remaining_ms: int | None = None  # as the meta server sees it
    last_beacon_age_ms: int | None = None
    primary_count: int | None = None
    secondary_count: int | None = None
    ops_per_second: float | None = None  # reads + writes per second since the previous refresh
    ops_history: tuple[float, ...] = ()  # oldest first, for the sparkline
    leader: bool = False  # the meta server that answered

    @property
    def status(self) -> str:
        if self.meta_status == UNALIVE:
            return UNALIVE
        if not self.reachable:
            return NO_ANSWER
        if self.meta_status is None:
            return ALIVE if self.role == ROLE_META else ANSWERS
        return self.meta_status


@dataclass(frozen=True)
class TableRow:
    """One line of ``ls -d``: a table and how many of its partitions are healthy."""

    app_id: int
    name: str
    status: str  # "AVAILABLE" | "DROPPED"
    partition_count: int
    replica_count: int
    fully_healthy: int | None = None  # None: its configuration could not be read this refresh
    unhealthy: int | None = None
    write_unhealthy: int | None = None
    read_unhealthy: int | None = None


@dataclass(frozen=True)
class PartitionRow:
    gpid: tuple[int, int]
    ballot: int
    primary: str
    secondaries: tuple[str, ...]
    learners: tuple[str, ...]
    health: str  # pegasus_shell.health names, with members the meta server declared dead left out
    last_committed_decree: int | None = None
    last_prepared_decree: int | None = None
    pending_mutations: int | None = None  # prepared but not committed
    queued_writes: int | None = None  # accepted by the primary, not yet prepared
    primary_lease_remaining_ms: int | None = None
    # Per learner, in the order of ``learners``: how its catch-up goes, from its own report ("" if unknown).
    learner_progress: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventRow:
    seq: int
    time: float  # epoch seconds
    kind: str
    message: str


@dataclass(frozen=True)
class Snapshot:
    taken_at: float  # epoch seconds when the refresh finished
    refresh: int  # 1, 2, ... per source
    meta_address: str  # the meta server that answered ("" when none did)
    nodes: tuple[NodeRow, ...] = ()
    tables: tuple[TableRow, ...] = ()
    selected_table: str | None = None
    partitions: tuple[PartitionRow, ...] = ()  # of selected_table
    events: tuple[EventRow, ...] = ()  # newest first
    meta_level: str | None = None
    error: str | None = None  # why the meta server's part is missing or stale
    stale_since: float | None = None  # tables and partitions are from this earlier refresh

    def node(self, address: str) -> NodeRow | None:
        return next((n for n in self.nodes if n.address == address), None)

    @property
    def alive_replica_count(self) -> int:
        return sum(1 for n in self.nodes if n.role == ROLE_REPLICA and n.status == ALIVE)

    @property
    def replica_server_count(self) -> int:
        return sum(1 for n in self.nodes if n.role == ROLE_REPLICA)
