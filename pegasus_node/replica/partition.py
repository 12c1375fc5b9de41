"""One hosted partition replica: the Twisted edge of a sans-IO ``ReplicaCore``.

The core (pegasus_node/replication) decides everything PacificA decides; this edge feeds it events (client
writes, peer messages, configurations, the lease, fsync completions, ticks) and carries out the effects it
returns, in order, as the simulator's edge does (tests/sim/replica_server.py): the WAL through the server's
group commit (``ServerLogWriter``: one fsync per cycle for every replica on the server), applies through the
storage engine, messages to peer replica servers (one-way, batched per peer: ``PeerOutbox``), requests to the
meta server, and learner state read from the WAL or a checkpoint.
A learner gets a checkpoint by name in the learn response and fetches the file in chunks before the core
sees the response (checkpoint_source.py, checkpoint_download.py): a checkpoint may exceed an RPC frame. It is
installed on a worker thread (checkpoint_install.py), so that a big one cannot stall the reactor (and with it
the server's beacons and every other replica); the core's effects after the install wait for it, in order.

The storage engine opens with its checkpoint only: the core alone knows which logged mutations are
committed, so it replays them (``ApplyMutation``) itself.
"""

from __future__ import annotations

import collections
import itertools
import time
from typing import TYPE_CHECKING

from twisted.internet import defer, threads
from twisted.logger import Logger

from pegasus_node.base.turn import call_soon
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.replica import checkpoint_install
from pegasus_node.replica.checkpoint_download import CheckpointDownloader, DownloadedCheckpoint
from pegasus_node.replica.checkpoint_source import CheckpointReference, load_learn_state
from pegasus_node.replica.log_writer import ReplicaLog
from pegasus_node.replica.replica_dir import read_ballot, replica_dir, write_ballot
from pegasus_node.replication import effects as fx
from pegasus_node.replication.config import PartitionConfiguration, PartitionStatus
from pegasus_node.replication.core import ReplicaCore
from pegasus_node.replication.messages import LearnResponse, Message
from pegasus_node.storage.engine import StorageEngine

if TYPE_CHECKING:
    from pegasus_node.replica.server import ReplicaServer

log = Logger(namespace="pegasus.replica")

OPENING, ERROR = "OPENING", "ERROR"
class PartitionReplica:
    def __init__(self, server: "ReplicaServer", gpid: tuple[int, int]) -> None:
        self.server = server
        self.gpid = gpid
        self.directory = replica_dir(server.config.data_dir, *gpid)
        self.app_name = ""
        self.partition_count = 0
        self.engine: StorageEngine | None = None
        self.core: ReplicaCore | None = None
        self.log_writer: ReplicaLog | None = None
        self.error_message = ""
        self.checkpoint_decree = 0
        self.checkpointed_at = time.monotonic()
        self._checkpointing = False
        # A learned checkpoint is installed on a worker thread (it may hold gigabytes). Meanwhile the core goes
        # on taking events, and the effects it returns wait in _held, in order, until the install ends: nothing
        # after the install may apply, reply or ack on the old state.
        self._installing: defer.Deferred | None = None  # fires when the install ends
        self._install_after_checkpoint: fx.InstallCheckpoint | None = None
        self._held: list[list] = []
        self._closed = False
        self._waiting: dict[int, defer.Deferred] = {}  # client write or follower read id -> its Deferred
        self._request_ids = itertools.count(1)
        self._flush_scheduled = False
        self._early_events: list = []  # configurations that arrive while the engine is opening
        self.checkpoint_downloader = CheckpointDownloader(gpid, self.directory, server.pool,
                                                          self._on_checkpoint_downloaded, self._learner_committed)

    # ----- lifecycle -----

    @property
    def status(self) -> str:
        if self.error_message:
            return ERROR
        if self.core is None:
            return OPENING
        return self.core.status.value

    @defer.inlineCallbacks
    def open(self):
        config = self.server.config
        try:
            self.engine = yield threads.deferToThread(
                StorageEngine.open, self.directory, fsync=config.fsync,
                segment_max_bytes=config.wal_segment_max_bytes, cluster_id=config.cluster_id)
            ballot = read_ballot(self.directory)
            report = self.engine.recovery
            self.core = ReplicaCore(self.server.address, self.gpid, self.server.replication_options, ballot=ballot,
                                    checkpoint_decree=report.checkpoint_decree, log=self.engine.recovered_log,
                                    applied_decree=self.engine.last_applied_decree)
        except (PegasusError, ValueError, OSError) as exc:
            self._fail(f"cannot open: {getattr(exc, 'message', None) or exc}")
            return
        self.checkpoint_decree = report.checkpoint_decree
        self.checkpoint_downloader.remove_leftover()
        if report.torn_tail is not None:
            log.warn("replica {gpid}: cut a torn WAL tail: {tail}", gpid=self.gpid, tail=report.torn_tail)
        for warning in report.fallbacks:
            log.warn("replica {gpid}: {warning}", gpid=self.gpid, warning=warning)
        log.info("replica {gpid} opened: checkpoint {c}, {n} logged mutations, ballot {b}", gpid=self.gpid,
                 c=report.checkpoint_decree, n=len(self.engine.recovered_log), b=ballot)
        self.log_writer = self.server.log_writer.attach(self.gpid, self.engine.wal, self._on_durable,
                                                        self._on_log_failed)
        now = self.server.clock()
        self.run(self.core.start(now))
        self.run(self.core.on_lease(now, self.server.lease.valid_until))
        early, self._early_events = self._early_events, []
        for config_update in early:
            self.on_config(config_update)

    def _fail(self, message: str) -> None:
        self.error_message = message
        log.error("replica {gpid} is in ERROR: {msg}", gpid=self.gpid, msg=message)
        self._fail_waiting(PegasusError(ErrorCode.ERR_DISK_IO, f"replica {self.gpid[0]}.{self.gpid[1]}: {message}"))

    def close(self) -> None:
        """No longer assigned here: stop serving; the data stays on disk (it may be assigned again)."""
        self._closed = True
        self.checkpoint_downloader.close()
        self._fail_waiting(PegasusError(ErrorCode.ERR_INVALID_STATE, f"replica {self.gpid} closed on this server"))
        self.core = None
        self._close_engine_when_idle()

    def _close_engine_when_idle(self) -> None:
        """The engine closes once no WAL batch or checkpoint still uses it (they call this when they end)."""
        if (self._closed and self.engine is not None and not self._checkpointing and self._installing is None
                and (self.log_writer is None or not self.log_writer.busy)):
            self.engine.close()
            self.engine = None
            if self.log_writer is not None:
                self.log_writer.detach()

    def _fail_waiting(self, error: PegasusError) -> None:
        waiting, self._waiting = self._waiting, {}
        for deferred in waiting.values():
            deferred.errback(error)

    # ----- the effect runner -----

    def run(self, effects: list) -> None:
        """Carry out effects in order; effects produced by the ones run here (applies) follow, in order."""
        self._run_in_order([effects])

    def _run_in_order(self, lists: list[list]) -> None:
        if self._installing is not None:
            self._held.extend(lists)
            return
        follow_ups = collections.deque(lists)
        handlers = _EFFECT_HANDLERS
        while follow_ups and self.core is not None:
            effects = follow_ups.popleft()
            for index, effect in enumerate(effects):
                if self.core is None:
                    return
                handler = handlers.get(type(effect))
                if handler is None:
                    raise AssertionError(f"unknown effect {effect!r}")
                more = handler(self, effect)
                if more:
                    follow_ups.append(more)
                if self._installing is not None:  # that was a checkpoint install: the rest waits for it
                    self._held = [effects[index + 1:], *follow_ups]
                    return

    def idle(self) -> defer.Deferred:
        """Fires once no checkpoint install holds effects back (at once if none does)."""
        if self._installing is None:
            return defer.succeed(None)
        waiter: defer.Deferred = defer.Deferred()
        self._installing.addCallback(waiter.callback)
        return waiter

    def _send(self, effect: fx.Send) -> None:
        self.server.send_message(effect.to, effect.message)

    def _append_log(self, effect: fx.AppendLog) -> None:
        self.log_writer.append(effect.mutation, effect.seq)

    def _apply(self, effect: fx.ApplyMutation) -> list:
        results = self.engine.apply(effect.mutation)
        return self.core.on_apply_finished(self.server.clock(), effect.mutation.decree, results)

    def _persist_ballot(self, effect: fx.PersistBallot) -> None:
        write_ballot(self.directory, effect.ballot, self.server.config.fsync)

    def _load_learn_state_in_thread(self, effect: fx.LoadLearnState) -> None:
        inline_limit = self.server.replication_options.max_learn_bytes  # what fits in a learn response
        d = threads.deferToThread(load_learn_state, self.engine, effect, inline_limit)
        d.addCallbacks(self._on_learn_state_loaded, self._on_learn_state_failed, errbackArgs=(effect,))

    def _report_to_meta(self, effect: fx.ReportToMeta) -> None:
        self.server.report_to_meta(effect.request)

    def _log_status_change(self, effect: fx.StatusChanged) -> None:
        log.info("replica {gpid} ballot {b}: {old} -> {new}", gpid=self.gpid, b=effect.ballot,
                 old=effect.old.value, new=effect.new.value)

    def _on_durable(self, seq: int) -> None:
        if self.core is not None:
            self.run(self.core.on_log_durable(self.server.clock(), seq))
        else:
            self._close_engine_when_idle()

    def _on_log_failed(self, error: PegasusError) -> None:
        if self.core is not None and not self.error_message:
            # Pending writes learn the real cause (ERR_DISK_IO) before the core steps down.
            self._fail(f"{error.message}; free disk space on the replica server, then restart it")
            self.run(self.core.on_local_error(self.server.clock(), error.message))

    # ----- learning -----

    def _on_learn_state_loaded(self, loaded: tuple) -> None:
        if self.core is not None:
            self.run(self.core.on_learn_state_loaded(self.server.clock(), *loaded))

    def _on_learn_state_failed(self, failure, load: fx.LoadLearnState) -> None:
        log.warn("replica {gpid}: cannot load learn state for {learner}: {err}", gpid=self.gpid,
                 learner=load.learner, err=failure.getErrorMessage())

    def _install_checkpoint(self, effect: fx.InstallCheckpoint) -> None:
        """The learner's side: the primary's checkpoint, fetched into a local file (checkpoint_download.py),
        or inline bytes from a primary that predates chunked transfers. The engine verifies it first. The
        install runs on a worker thread, after any checkpoint being written (both change the checkpoint
        directory); until it ends, ``run`` holds every later effect back."""
        if effect.checkpoint is None:
            return
        self._installing = defer.Deferred()
        if self._checkpointing:
            self._install_after_checkpoint = effect
        else:
            self._start_install(effect)

    def _start_install(self, effect: fx.InstallCheckpoint) -> None:
        downloaded = effect.checkpoint if isinstance(effect.checkpoint, DownloadedCheckpoint) else None
        d = checkpoint_install.load_in_thread(self.engine, self.directory, effect.checkpoint, self.gpid)
        d.addCallback(self._install_finished, effect, downloaded)

    def _install_finished(self, outcome: tuple, effect: fx.InstallCheckpoint,
                          downloaded: DownloadedCheckpoint | None) -> None:
        installed, error = outcome
        decree = None
        if installed is not None and self.engine is not None:
            decree = self.engine.adopt_checkpoint(installed)
        elif error is not None and self.core is not None:
            # The core already moved to the checkpoint's decree and the engine did not: applying what follows
            # would diverge, so this replica stops here, as one that cannot open does.
            self._fail(f"cannot install the checkpoint learned at decree {effect.decree}: {error.message}. Check "
                       "this server's disk (or, if the file is damaged, the primary's newest checkpoint), then "
                       "restart this replica server to learn again")
            self.core = None
        if downloaded is not None:
            self.checkpoint_downloader.used(downloaded, installed=decree is not None)
        if decree is not None:
            self.checkpoint_decree = decree
            log.info("replica {gpid} installed a learned checkpoint at decree {d}", gpid=self.gpid, d=decree)
        done, self._installing = self._installing, None
        held, self._held = self._held, []
        self._run_in_order(held)
        self._close_engine_when_idle()
        done.callback(None)

    # ----- events from the server -----

    def on_config(self, config: PartitionConfiguration) -> None:
        if self.core is None:
            if not self._closed and not self.error_message:
                self._early_events.append(config)
            return
        self.run(self.core.on_config(self.server.clock(), config))

    def on_lease(self, lease_until: float) -> None:
        if self.core is not None:
            self.run(self.core.on_lease(self.server.clock(), lease_until))

    def on_message(self, message: Message) -> None:
        if self.core is None:
            return
        if isinstance(message, LearnResponse) and not isinstance(message.checkpoint, (bytes, type(None))):
            self._on_checkpoint_reference(message)
            return
        self.run(self.core.on_message(self.server.clock(), message))

    def _on_checkpoint_reference(self, response: LearnResponse) -> None:
        """The response names the primary's checkpoint: fetch it first (the core sees the response then)."""
        reference = CheckpointReference.from_wire(response.checkpoint)
        if reference is None:
            log.warn("replica {gpid}: dropped a learn response from {peer}: its checkpoint is neither bytes nor a "
                     "checkpoint reference", gpid=self.gpid, peer=response.sender)
            return
        if self.core.status is not PartitionStatus.POTENTIAL_SECONDARY:
            return  # not learning: the core ignores learn responses, so nothing is worth fetching
        self.checkpoint_downloader.offer(response, reference)

    def _on_checkpoint_downloaded(self, response: LearnResponse) -> None:
        if self.core is not None:
            self.run(self.core.on_message(self.server.clock(), response))

    def _learner_committed(self) -> int:
        return self.core.committed if self.core is not None else 0

    def on_tick(self) -> None:
        if self.core is not None:
            self.run(self.core.on_tick(self.server.clock()))

    # ----- client writes and reads -----

    def submit(self, op: dict, deadline: float | None = None) -> defer.Deferred:
        """One client request (one storage op). Fires with the op's result plus ``decree``."""
        self._raise_if_failed()
        if self.core is None:
            raise PegasusError(ErrorCode.ERR_INVALID_STATE, f"replica {self.gpid} is {self.status}, not PRIMARY")
        request_id, deferred = self._new_waiter()
        effects = self.core.on_client_write(self.server.clock(), request_id, [op], timestamp_us=time.time_ns() // 1000,
                                            deadline=deadline, flush=False)
        self.run(effects)
        self._flush_at_end_of_turn()
        return deferred

    def follower_read(self) -> defer.Deferred:
        """A read sent here as a follower read: fires with the engine to read at once, when this replica may
        serve it (replication/follower_reads.py); fails with PegasusError otherwise."""
        self._raise_if_failed()
        if self.core is None or self.engine is None:
            raise PegasusError(ErrorCode.ERR_INVALID_STATE, f"replica {self.gpid} is {self.status}")
        read_id, deferred = self._new_waiter()
        self.run(self.core.on_follower_read(self.server.clock(), read_id, flush=False))
        self._flush_at_end_of_turn()
        return deferred

    def _raise_if_failed(self) -> None:
        if self.error_message:
            raise PegasusError(ErrorCode.ERR_DISK_IO, f"replica {self.gpid[0]}.{self.gpid[1]}: {self.error_message}")

    def _new_waiter(self) -> tuple[int, defer.Deferred]:
        """An id for the core (a client write's or a follower read's) and the Deferred its answer fires."""
        waiter_id = next(self._request_ids)
        deferred = self._waiting[waiter_id] = defer.Deferred()
        return waiter_id, deferred

    def _flush_at_end_of_turn(self) -> None:
        """Every write of this reactor turn goes in one mutation, and every follower read in one request."""
        if not self._flush_scheduled and self.core is not None:
            self._flush_scheduled = True
            call_soon(self.server.reactor, self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.core is not None:
            self.run(self.core.flush(self.server.clock()))

    def _reply(self, effect: fx.ReplyClient) -> None:
        deferred = self._waiting.pop(effect.request_id, None)
        if deferred is None:
            return
        if effect.error == ErrorCode.ERR_OK:
            result = effect.results[0] if effect.results else {}
            deferred.callback({**result, "decree": effect.decree})
            return
        messages = {
            ErrorCode.ERR_INVALID_STATE: f"replica {self.gpid[0]}.{self.gpid[1]} on {self.server.address} is not "
                                         "the serving primary",
            ErrorCode.ERR_TIMEOUT: "the write's outcome is unknown: it was prepared but not confirmed in time",
        }
        deferred.errback(PegasusError(effect.error, messages.get(effect.error, effect.error.name)))

    def _reply_read(self, effect: fx.ReplyRead) -> None:
        deferred = self._waiting.pop(effect.read_id, None)
        if deferred is None:
            return
        if effect.error == ErrorCode.ERR_OK:
            deferred.callback(self.engine)
            return
        where = f"replica {self.gpid[0]}.{self.gpid[1]} on {self.server.address}"
        messages = {
            ErrorCode.ERR_INVALID_STATE: f"{where} cannot serve a follower read now (it is {self.status}, or its "
                                         "primary did not confirm its commit point); read from the primary",
            ErrorCode.ERR_TIMEOUT: f"{where}: the primary did not confirm its commit point in time",
        }
        deferred.errback(PegasusError(effect.error, messages.get(effect.error, effect.error.name)))

    def readable_engine(self, backup_request: bool = False) -> StorageEngine:
        core = self.core
        if core is None or self.engine is None:
            raise PegasusError(ErrorCode.ERR_INVALID_STATE, f"replica {self.gpid} is {self.status}")
        if backup_request and core.status in (PartitionStatus.PRIMARY, PartitionStatus.SECONDARY):
            return self.engine  # a backup request accepts a possibly stale read (seed 000)
        error = core.check_read(self.server.clock())
        if error != ErrorCode.ERR_OK:
            raise PegasusError(error, f"replica {self.gpid[0]}.{self.gpid[1]} on {self.server.address} is "
                                      f"{core.status.value}, not a serving primary")
        return self.engine

    # ----- status -----

    @property
    def last_committed_decree(self) -> int:
        return self.core.committed if self.core is not None else 0

    def report(self) -> dict | None:
        if self.core is None:
            return None
        report = self.core.report().to_wire()
        if self.error_message:
            report["status"] = ERROR
        return report

    def status_entry(self) -> dict:
        entry = {"gpid": list(self.gpid), "status": self.status, "app_name": self.app_name,
                 "storage_dir": str(self.directory), "checkpoint_decree": self.checkpoint_decree,
                 "installing_checkpoint": self._installing is not None, "error": self.error_message}
        core = self.core
        if core is not None:
            now = self.server.clock()
            entry.update(core.report().to_wire())
            entry["status"] = self.status
            entry.update({
                "last_prepared_decree": core.log.last,
                "last_applied_decree": core.applied,
                "pending_mutations": max(0, core.log.last - core.committed),
                "queued_writes": len(core.clients.queue),
                "pending_follower_reads": core.reads.pending,
                "primary_lease_remaining_ms": int(max(0.0, core.lease_until - now) * 1000)
                if core.status is PartitionStatus.PRIMARY else None,
            })
        entry.update(self.checkpoint_downloader.status())
        if self.engine is not None:
            entry["stats"] = self.engine.stats()
        return entry

    # ----- checkpoints -----

    @defer.inlineCallbacks
    def checkpoint(self, force: bool = False):
        """Checkpoint the applied state (if anything is new, or ``force``) and GC the WAL below it."""
        engine, core = self.engine, self.core
        if (engine is None or core is None or self._checkpointing or self._installing is not None
                or self.error_message):
            return None
        if not force and engine.last_applied_decree == self.checkpoint_decree:
            return None
        self._checkpointing = True
        try:
            snapshot = engine.checkpoint_snapshot()
            yield threads.deferToThread(engine.write_checkpoint, snapshot)
            self.checkpoint_decree = snapshot.decree
            removed = engine.gc_wal(self.server.duplications.gc_floor(self.gpid))
            log.info("replica {gpid} checkpointed at decree {d}, removed {n} WAL segments", gpid=self.gpid,
                     d=snapshot.decree, n=len(removed))
            return snapshot.decree
        finally:
            self._checkpointing = False
            install, self._install_after_checkpoint = self._install_after_checkpoint, None
            if install is not None:
                self._start_install(install)
            self._close_engine_when_idle()


# Effect type -> the PartitionReplica method that carries it out (a dict lookup per effect: the runner is on every
# write's path several times).
_EFFECT_HANDLERS = {
    fx.Send: PartitionReplica._send,
    fx.AppendLog: PartitionReplica._append_log,
    fx.ApplyMutation: PartitionReplica._apply,
    fx.ReplyClient: PartitionReplica._reply,
    fx.ReplyRead: PartitionReplica._reply_read,
    fx.PersistBallot: PartitionReplica._persist_ballot,
    fx.InstallCheckpoint: PartitionReplica._install_checkpoint,
    fx.LoadLearnState: PartitionReplica._load_learn_state_in_thread,
    fx.ReportToMeta: PartitionReplica._report_to_meta,
    fx.StatusChanged: PartitionReplica._log_status_change,
}
