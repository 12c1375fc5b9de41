"""The learner's side of learning from a checkpoint: fetch the file that a learn response names, in chunks,
then hand the core that response with the fetched file in place of the name.

Why here, at the edge: the core treats a learn response's checkpoint as opaque and installs it
synchronously (``InstallCheckpoint``), so the edge gets the whole file onto local disk first, while messages
and ticks keep flowing to the core. One fetch at a time per replica, into one file in the replica
directory; a failed fetch is logged and dropped, and the core's learn retry (``learn_retry_seconds``) asks
the primary again. When the transfer itself broke (a timeout, a lost connection, a busy or restarting primary),
the bytes already fetched are kept: if the next response names the same file of the same sender, the fetch
resumes where it stopped (checkpoint files never change once in place, and the engine verifies every CRC on
install). Any other failure, a restart, or a response naming another file starts from zero.

The core keeps asking while a large fetch runs, and it only accepts the response to its newest request. So
the fetched file goes out with the newest response that named a checkpoint, and stays on disk until the
core installs it or has learned past it: a later response gets it at once, even one that names a newer
checkpoint (the older committed state is still a valid place to learn on from).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from twisted.internet import defer, threads
from twisted.logger import Logger

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.replica.checkpoint_source import CHUNK_METHOD, MAX_CHUNK_BYTES, CheckpointReference
from pegasus_node.replication.messages import LearnResponse
from pegasus_node.twisted_rpc import expect

log = Logger(namespace="pegasus.replica")

DOWNLOAD_FILE = "learning-checkpoint.part"
CHUNK_TIMEOUT_SECONDS = 30.0
# Files at least this big get a progress line in the replica log every ~10%.
PROGRESS_MIN_BYTES = 16 << 20


class CheckpointTransferError(Exception):
    """One fetch went wrong (a short read, a file that changed size): the learner learns again."""


class _Abandoned(Exception):
    """The replica closed while its fetch ran."""


# Failures of the transfer, not of the file: what was fetched before them is still good.
_RESUMABLE_ERRORS = frozenset({ErrorCode.ERR_TIMEOUT, ErrorCode.ERR_NETWORK_FAILURE, ErrorCode.ERR_BUSY,
                               ErrorCode.ERR_SHUTTING_DOWN})


@dataclass(frozen=True, slots=True)
class _Partial:
    """The part file of a fetch that broke off: ``done`` bytes of ``reference`` from ``source``."""

    source: str
    reference: CheckpointReference
    done: int


def _open_part(path: Path, keep: int):
    """The part file to write on at ``keep`` (blocking): its first ``keep`` bytes stay, the rest goes."""
    if not keep:
        return open(path, "wb")
    handle = open(path, "r+b")
    if os.fstat(handle.fileno()).st_size < keep:
        handle.close()
        raise CheckpointTransferError(f"the part file {path} lost its first {keep} bytes")
    handle.truncate(keep)
    handle.seek(keep)
    return handle


@dataclass(frozen=True, slots=True)
class DownloadedCheckpoint:
    """A fetched checkpoint in a local file: what ``InstallCheckpoint`` carries on this edge.
    Never decoded from the wire (msgpack yields no such object), so a peer cannot name a local path."""

    path: Path
    decree: int
    size: int
    source: str
    chunks: int
    seconds: float

    def summary(self) -> dict:
        return {"decree": self.decree, "bytes": self.size, "from": self.source, "chunks": self.chunks,
                "seconds": round(self.seconds, 3)}


@dataclass(slots=True)
class _Fetch:
    reference: CheckpointReference
    source: str
    started: float
    done: int = 0
    resumed_from: int = 0
    chunks: int = 0
    reported_tenths: int = 0
    call: defer.Deferred | None = None


class CheckpointDownloader:
    """Fetches the checkpoints named in one replica's learn responses.

    ``deliver(response)`` hands the core a response whose checkpoint is a ``DownloadedCheckpoint`` (or None);
    ``learner_committed()`` is the core's commit point. The replica calls ``used`` once the core's
    ``InstallCheckpoint`` is done with the file, and ``close`` when it closes.
    """

    def __init__(self, gpid: tuple[int, int], directory: Path, pool: Any,
                 deliver: Callable[[LearnResponse], None], learner_committed: Callable[[], int],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gpid = gpid
        self.path = directory / DOWNLOAD_FILE
        self._pool = pool
        self._deliver = deliver
        self._learner_committed = learner_committed
        self._clock = clock
        self._fetch: _Fetch | None = None
        self._newest: tuple[LearnResponse, CheckpointReference] | None = None  # named a checkpoint, while fetching
        self._partial: _Partial | None = None  # in self.path, while no fetch runs
        self.downloaded: DownloadedCheckpoint | None = None  # fetched, not yet installed
        self.learned: dict | None = None  # the last installed one's summary, for replica.status
        self._closed = False

    # ----- from the replica -----

    def offer(self, response: LearnResponse, reference: CheckpointReference) -> None:
        """A learn response that names ``reference`` (a checkpoint of its sender) instead of carrying it."""
        if self._closed:
            return
        committed = self._learner_committed()
        if reference.decree <= committed:
            # Nothing to fetch: the core installs only a checkpoint beyond its commit point.
            self._deliver(dataclasses.replace(response, checkpoint=None))
            return
        if self.downloaded is not None and self.downloaded.decree <= committed:
            self._discard(self.downloaded)  # learned past it some other way
        if self.downloaded is not None:
            self._deliver(self._with_download(response, reference))
            return
        self._newest = (response, reference)
        if self._fetch is None:
            fetch = self._fetch = _Fetch(reference, response.sender, self._clock())
            partial, self._partial = self._partial, None
            if partial is not None and (partial.source, partial.reference) == (fetch.source, reference):
                fetch.done = fetch.resumed_from = partial.done
            self._run(fetch).addErrback(
                lambda failure: log.failure("replica {gpid}: learning checkpoint {file} failed", failure,
                                            gpid=self.gpid, file=reference.file))

    def used(self, downloaded: DownloadedCheckpoint, installed: bool) -> None:
        """The core's ``InstallCheckpoint`` is done with the file (the engine copied it, or failed to)."""
        if installed:
            self.learned = downloaded.summary()
        self._discard(downloaded)

    def _discard(self, downloaded: DownloadedCheckpoint) -> None:
        if self.downloaded is downloaded:
            self.downloaded = None
        downloaded.path.unlink(missing_ok=True)

    def remove_leftover(self) -> None:
        """A fetch that a crash interrupted left its part behind: no use after a restart."""
        if self._fetch is None and self.downloaded is None:
            self._partial = None
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        self._closed = True
        if self._partial is not None:
            self._partial = None
            self.path.unlink(missing_ok=True)
        if self.downloaded is not None:
            self._discard(self.downloaded)
        if self._fetch is not None and self._fetch.call is not None:
            self._fetch.call.cancel()  # the fetch ends, and removes its part

    def status(self) -> dict:
        out = {}
        fetch = self._fetch
        if fetch is not None:
            out["checkpoint_download"] = {"file": fetch.reference.file, "from": fetch.source,
                                          "bytes_done": fetch.done, "bytes": fetch.reference.size,
                                          "resumed_from": fetch.resumed_from}
        elif self._partial is not None:
            out["checkpoint_download_interrupted"] = {"file": self._partial.reference.file,
                                                      "from": self._partial.source, "bytes_done": self._partial.done,
                                                      "bytes": self._partial.reference.size}
        if self.learned is not None:
            out["learned_checkpoint"] = self.learned
        return out

    # ----- the fetch -----

    def _with_download(self, response: LearnResponse, reference: CheckpointReference) -> LearnResponse:
        """``response`` carrying the fetched checkpoint. Its mutations follow the checkpoint it named, so they
        fit ours only if that one is not newer (the core skips what the checkpoint covers); otherwise none
        go along, and the core learns on from our checkpoint's decree."""
        downloaded = self.downloaded
        mutations = response.mutations if reference.decree <= downloaded.decree else ()
        return dataclasses.replace(response, checkpoint=downloaded, checkpoint_decree=downloaded.decree,
                                   mutations=mutations)

    @defer.inlineCallbacks
    def _run(self, fetch: _Fetch):
        reference = fetch.reference
        if fetch.resumed_from:
            log.info("replica {gpid}: resuming checkpoint {file} from {peer} at byte {done} of {size}",
                     gpid=self.gpid, file=reference.file, peer=fetch.source, done=fetch.done, size=reference.size)
        else:
            log.info("replica {gpid}: learning checkpoint {file} (decree {decree}, {size} bytes) from {peer} in "
                     "chunks", gpid=self.gpid, file=reference.file, decree=reference.decree, size=reference.size,
                     peer=fetch.source)
        try:
            yield self._fetch_into_file(fetch)
        except BaseException as exc:
            self._fetch = self._newest = None
            resumable = (isinstance(exc, PegasusError) and exc.code in _RESUMABLE_ERRORS and fetch.done > 0
                         and not self._closed)
            if resumable:
                self._partial = _Partial(fetch.source, reference, fetch.done)
            else:
                self.path.unlink(missing_ok=True)
            if isinstance(exc, _Abandoned):
                return
            if not isinstance(exc, (PegasusError, OSError, CheckpointTransferError)):
                raise
            log.warn("replica {gpid}: learning checkpoint {file} from {peer} failed after {done} of {size} bytes: "
                     "{error}; the learner asks its primary again{resume}", gpid=self.gpid, file=reference.file,
                     peer=fetch.source, done=fetch.done, size=reference.size, error=getattr(exc, "message", None) or exc,
                     resume=" and resumes this file if it names it again" if resumable else "")
            return
        self._fetch = None
        seconds = self._clock() - fetch.started
        log.info("replica {gpid}: fetched checkpoint {file} ({size} bytes) in {chunks} chunks, {s:.1f} s",
                 gpid=self.gpid, file=reference.file, size=reference.size, chunks=fetch.chunks, s=seconds)
        self.downloaded = DownloadedCheckpoint(self.path, reference.decree, reference.size, fetch.source,
                                               fetch.chunks, seconds)
        newest, self._newest = self._newest, None
        self._deliver(self._with_download(*newest))

    @defer.inlineCallbacks
    def _fetch_into_file(self, fetch: _Fetch):
        reference = fetch.reference
        handle = yield threads.deferToThread(_open_part, self.path, fetch.done)
        try:
            while fetch.done < reference.size:
                body = {"gpid": list(self.gpid), "file": reference.file, "offset": fetch.done,
                        "length": MAX_CHUNK_BYTES}
                fetch.call = self._pool.call(fetch.source, CHUNK_METHOD, body, CHUNK_TIMEOUT_SECONDS)
                try:
                    reply = yield fetch.call
                except defer.CancelledError:
                    raise _Abandoned() from None
                finally:
                    fetch.call = None
                if self._closed:
                    raise _Abandoned()
                data = self._chunk_data(expect(reply, {"data": bytes, "size": int}), fetch)
                yield threads.deferToThread(handle.write, data)
                fetch.done += len(data)
                fetch.chunks += 1
                self._report_progress(fetch)
        finally:
            handle.close()
        if self._closed:
            raise _Abandoned()

    @staticmethod
    def _chunk_data(reply: dict, fetch: _Fetch) -> bytes:
        reference = fetch.reference
        if reply["size"] != reference.size:
            raise CheckpointTransferError(f"the file is {reply['size']} bytes now, not the {reference.size} "
                                          "it was when named")
        data = reply["data"]
        if not data or fetch.done + len(data) > reference.size:
            raise CheckpointTransferError(f"a chunk of {len(data)} bytes at offset {fetch.done} does not fit "
                                          f"a file of {reference.size} bytes")
        return data

    def _report_progress(self, fetch: _Fetch) -> None:
        size = fetch.reference.size
        tenths = fetch.done * 10 // size
        if size >= PROGRESS_MIN_BYTES and tenths > fetch.reported_tenths and fetch.done < size:
            fetch.reported_tenths = tenths
            log.info("replica {gpid}: checkpoint {file} from {peer}: {pct}% ({done} of {size} bytes)",
                     gpid=self.gpid, file=fetch.reference.file, peer=fetch.source, pct=tenths * 10,
                     done=fetch.done, size=size)
