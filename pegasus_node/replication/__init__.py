"""PacificA replication, sans I/O: one ``ReplicaCore`` per hosted partition replica.

The core takes events (method calls with an explicit ``now`` in seconds) and returns effects (frozen
dataclasses in effects.py) for the edge to carry out. It never reads a clock, draws a random number or does
I/O, so the same code runs under Twisted (pegasus_node/replica) and under the deterministic simulator
(tests/sim). Messages between replicas (messages.py) map to msgpack dicts with ``to_wire()`` and
``decode_message()``.

Creating a core
---------------
    core = ReplicaCore(address, gpid, options, ballot=<last PersistBallot>, checkpoint_decree=D,
                       log=<WAL mutations after D, contiguous>, applied_decree=<storage state's decree>)
    effects = core.start(now)        # applies what the log shows committed beyond the storage state

A new replica is ``ReplicaCore(address, gpid, options)``. Every replica starts INACTIVE and takes its role
from a configuration. The storage engine must NOT replay its WAL into the memtable by itself: only the
core knows which logged mutations are committed (it applies them through ``ApplyMutation``).

Events the edge feeds (each returns a list of effects)
------------------------------------------------------
    on_config(now, PartitionConfiguration)   from the meta server: beacon replies and pushes
    on_lease(now, lease_until)               the server's lease moved (ReplicaLease, lease.py); call after
                                             the beacon reply's on_config calls
    on_client_write(now, request_id, writes, timestamp_us=, deadline=, flush=True)
                                             storage op dicts (storage/operations.py), atomically applied
    on_follower_read(now, read_id, deadline=, flush=True)
                                             a read sent to this secondary as a follower read
    flush(now)                               after the on_client_write / on_follower_read(flush=False) calls
                                             of one reactor turn
    check_read(now) -> ErrorCode             not an event: may the primary serve a read from its applied
                                             state now (PRIMARY, lease valid, reconciled and applied)
    on_message(now, message)                 a decoded replication message from a peer
    on_log_durable(now, seq)                 every AppendLog up to ``seq`` is fsynced
    on_apply_finished(now, decree, results)  the storage engine applied ``decree``; its per-op results
    on_learn_state_loaded(now, load_id, checkpoint_decree, checkpoint, mutations)
                                             the answer to LoadLearnState (checkpoint None: WAL only)
    on_tick(now)                             every ~0.1 s: group checks, retries, timeouts
    on_local_error(now, reason)              storage broke under this replica: it goes to ERROR
    report() -> ReplicaReport                for beacons; is_serving(now) for metrics

Effects the edge carries out, in order
--------------------------------------
    PersistBallot(gpid, ballot)          durable (small synchronous write) BEFORE the effects after it
    AppendLog(gpid, mutation, seq)       append to the WAL; supersedes logged decrees >= mutation.decree
                                         (always with a higher ballot, so storage.wal.resolve_log agrees);
                                         group-commit fsyncs, then on_log_durable(now, highest seq synced)
    InstallCheckpoint(gpid, decree, checkpoint)
                                         replace the storage state durably before the effects after it
    ApplyMutation(gpid, mutation)        storage_engine.apply(mutation), then on_apply_finished
    Send(to, message)                    send message.to_wire() to the replica server at ``to``
    ReplyClient(gpid, request_id, error, decree, results)
                                         answer a write: ERR_OK with the apply results; ERR_INVALID_STATE
                                         (not written: refresh and retry); ERR_TIMEOUT (outcome unknown)
    ReplyRead(gpid, read_id, error)      answer a follower read: ERR_OK: read the applied state now;
                                         otherwise the client asks the primary
    ReportToMeta(ConfigChangeRequest)    to the meta server (meta.guardian.handle_request decides)
    LoadLearnState(gpid, load_id, learner, start_decree, end_decree, by_reference)
                                         read decrees from the WAL, or the newest checkpoint (by name, or
                                         its bytes for an older learner) plus the WAL after it; then
                                         on_learn_state_loaded
    StatusChanged(gpid, ballot, old, new)
                                         informational (logs, metrics)

Client writes and results
-------------------------
A write's answer needs the storage engine's result (incr's new value, check_and_set's outcome), which
exists only once the mutation is applied, and atomic ops are applied deterministically on every replica at
commit. So the primary answers from ``on_apply_finished``: the edge applies, passes the results back, and
the core emits ``ReplyClient`` with this request's slice of them. One mutation carries the ops of several
requests (batching); the core remembers which ops belong to which request.

Message flow
------------
    client ─write─► primary: queue; fold into a mutation while < max_inflight_mutations are uncommitted
    primary: AppendLog + Prepare(config, mutation, committed) ─► every secondary and learner
    secondary: append (once valid, see follower.py) ─ fsync ─► PrepareAck(acked=d) ─► primary
    primary: commit d when its own log and every secondary have d durably; ApplyMutation; ReplyClient
    commit point ─► secondaries on the next Prepare, and by GroupCheck every group_check_seconds
    new primary (ballot + 1): re-proposes everything beyond its commit point; serves reads after that is
    committed and applied. Secondaries replace stale entries that the new primary does not have.
    learner: LearnRequest(committed) ─► primary ─► LearnResponse(checkpoint?, mutations) ─► learner; it
    receives Prepares meanwhile; once it acknowledges the commit point the primary requires its acks and
    sends ReportToMeta(UPGRADE); the meta makes it a secondary (ballot + 1).
    primary: a member silent or stuck for prepare_timeout_seconds ─► ReportToMeta(REMOVE).
    a message at an older ballot gets StaleBallot(config) back; a newer config in any message is adopted.
    follower read: secondary ─ReadIndexRequest─► primary (one for the reads of a turn) ─ReadIndexReply(its
    commit point, only while it serves with a lease)─► secondary; the reads are served once it has applied
    that point (follower_reads.py).

Leases (lease.py): the server's lease ends ``lease`` after the SEND time of its last acknowledged beacon; a
primary without a lease takes no new writes and serves no reads. The meta server declares a server dead
only ``grace`` > ``lease`` after its last beacon arrived, so an old primary stops before a new one starts.
A restarted replica refuses to be primary at the ballot it had persisted (it may have lost mutations it
proposed at it); it reports INACTIVE at that ballot, and the meta server promotes again (ballot + 1).
"""

from pegasus_node.replication.config import (
    ConfigChangeRequest,
    Gpid,
    PartitionConfiguration,
    PartitionStatus,
    ReplicaReport,
    ReplicationOptions,
    RequestKind,
    WireFormatError,
)
from pegasus_node.replication.core import ReplicaCore
from pegasus_node.replication.effects import (
    AppendLog,
    ApplyMutation,
    Effect,
    InstallCheckpoint,
    LoadLearnState,
    PersistBallot,
    ReplyClient,
    ReplyRead,
    ReportToMeta,
    Send,
    StatusChanged,
)
from pegasus_node.replication.lease import FailureDetector, LeaseSettings, ReplicaLease
from pegasus_node.replication.messages import (
    GroupCheck,
    GroupCheckReply,
    LearnRequest,
    LearnResponse,
    Message,
    Prepare,
    PrepareAck,
    ReadIndexReply,
    ReadIndexRequest,
    StaleBallot,
    decode_message,
)

__all__ = [
    "AppendLog",
    "ApplyMutation",
    "ConfigChangeRequest",
    "Effect",
    "FailureDetector",
    "Gpid",
    "GroupCheck",
    "GroupCheckReply",
    "InstallCheckpoint",
    "LearnRequest",
    "LearnResponse",
    "LeaseSettings",
    "LoadLearnState",
    "Message",
    "PartitionConfiguration",
    "PartitionStatus",
    "PersistBallot",
    "Prepare",
    "PrepareAck",
    "ReplicaCore",
    "ReplicaLease",
    "ReplicaReport",
    "ReplicationOptions",
    "ReadIndexReply",
    "ReadIndexRequest",
    "ReplyClient",
    "ReplyRead",
    "ReportToMeta",
    "RequestKind",
    "Send",
    "StaleBallot",
    "StatusChanged",
    "WireFormatError",
    "decode_message",
]
