"""Types shared by the replication core, its edges and the meta server's guardian: partition statuses,
partition configurations, replica reports, the requests a primary sends to the meta server, and the
core's tunables.

Everything here is immutable and maps to msgpack-able dicts (``to_wire`` / ``from_wire``) whose field names
follow docs/rpc.md. ``from_wire`` validates the shape and raises ``WireFormatError`` (a ValueError) with a
message naming the field, so that a malformed message from the network is a clear error, never a crash.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

Gpid = tuple[int, int]


class WireFormatError(ValueError):
    """A message or record from the wire does not have the expected shape."""


class PartitionStatus(str, enum.Enum):
    INACTIVE = "INACTIVE"
    PRIMARY = "PRIMARY"
    SECONDARY = "SECONDARY"
    POTENTIAL_SECONDARY = "POTENTIAL_SECONDARY"  # a learner
    ERROR = "ERROR"


# ----------------------------------------------------------------------------------------- wire helpers


def wire_field(data: Any, name: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(data, dict):
        raise WireFormatError(f"{what}: expected a map, got {type(data).__name__}")
    if name not in data:
        raise WireFormatError(f"{what}: missing field {name!r}")
    value = data[name]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise WireFormatError(f"{what}: field {name!r} has the wrong type ({type(value).__name__})")
    return value


def wire_gpid(data: Any, what: str) -> Gpid:
    raw = wire_field(data, "gpid", (list, tuple), what)
    if len(raw) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
        raise WireFormatError(f"{what}: field 'gpid' must be [app_id, partition_index]")
    return (raw[0], raw[1])


def wire_addresses(data: Any, name: str, what: str) -> tuple[str, ...]:
    raw = wire_field(data, name, (list, tuple), what)
    if not all(isinstance(x, str) and x for x in raw):
        raise WireFormatError(f"{what}: field {name!r} must be a list of addresses")
    return tuple(raw)


# --------------------------------------------------------------------------------------- configurations


@dataclass(frozen=True, slots=True)
class PartitionConfiguration:
    """One partition's membership at one ballot, as the meta server decides it (rpc.md ``PartitionConfig``)."""

    gpid: Gpid
    ballot: int
    primary: str = ""
    secondaries: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()
    last_committed_decree: int = 0
    # shared_wire()'s dict, once made. Not part of the value.
    _wire: dict | None = field(default=None, init=False, repr=False, compare=False)

    def role_of(self, address: str) -> PartitionStatus:
        if address and address == self.primary:
            return PartitionStatus.PRIMARY
        if address in self.secondaries:
            return PartitionStatus.SECONDARY
        if address in self.learners:
            return PartitionStatus.POTENTIAL_SECONDARY
        return PartitionStatus.INACTIVE

    @property
    def members(self) -> tuple[str, ...]:
        """The primary (if any) and the secondaries: the replicas that hold every committed decree."""
        return ((self.primary,) if self.primary else ()) + self.secondaries

    @property
    def everyone(self) -> tuple[str, ...]:
        return self.members + self.learners

    def to_wire(self) -> dict:
        """A new dict, which the caller may change."""
        return {
            "gpid": list(self.gpid),
            "ballot": self.ballot,
            "primary": self.primary,
            "secondaries": list(self.secondaries),
            "learners": list(self.learners),
            "last_committed_decree": self.last_committed_decree,
        }

    def shared_wire(self) -> dict:
        """``to_wire()``, made once and shared: a primary sends its configuration in every Prepare and GroupCheck.
        Only for the messages' wire dicts, which are serialized and never changed; read it, never change it."""
        wire = self._wire
        if wire is None:
            wire = self.to_wire()
            object.__setattr__(self, "_wire", wire)
        return wire

    @classmethod
    def from_wire(cls, data: Any) -> "PartitionConfiguration":
        # Every Prepare and GroupCheck carries its partition's configuration, which rarely changes: reuse the
        # configuration decoded earlier from an equal dict (it is immutable). The key holds the integer fields
        # and is only made when they are exact ints, since True and 7.0 compare equal to 1 and 7 yet are
        # invalid; the other fields (strings and lists of strings) only compare equal to valid values.
        key = _config_cache_key(data)
        if key is not None:
            cached = _decoded_configs.get(key)
            if cached is not None and cached[0] == data:
                return cached[1]
        config = cls._from_wire(data)
        if key is not None:
            if len(_decoded_configs) >= _DECODED_CONFIGS_LIMIT:
                _decoded_configs.clear()
            # A private canonical dict (not shared_wire(), which leaves with messages): only a dict with exactly
            # these fields and values hits, so one that omits an optional field or has extra ones is decoded anew.
            _decoded_configs[key] = (config.to_wire(), config)
        return config

    @classmethod
    def _from_wire(cls, data: Any) -> "PartitionConfiguration":
        what = "partition configuration"
        gpid = wire_gpid(data, what)
        primary = wire_field(data, "primary", str, what)
        secondaries = wire_addresses(data, "secondaries", what)
        learners = wire_addresses(data, "learners", what) if "learners" in data else ()
        lcd = data.get("last_committed_decree", 0)
        if not isinstance(lcd, int) or isinstance(lcd, bool):
            raise WireFormatError(f"{what}: field 'last_committed_decree' must be an integer")
        config = cls(gpid, wire_field(data, "ballot", int, what), primary, secondaries, learners, lcd)
        everyone = config.everyone
        if len(set(everyone)) != len(everyone):
            raise WireFormatError(f"{what}: an address appears twice among primary, secondaries and learners")
        return config


def _config_cache_key(data: Any) -> tuple[int, int, int, int] | None:
    """The integer fields of a configuration's wire dict when they are all exact ints, else None."""
    if type(data) is dict:
        gpid = data.get("gpid")
        ballot = data.get("ballot")
        lcd = data.get("last_committed_decree")
        if (type(gpid) is list and len(gpid) == 2 and type(gpid[0]) is int and type(gpid[1]) is int
                and type(ballot) is int and type(lcd) is int):
            return (gpid[0], gpid[1], ballot, lcd)
    return None


# (gpid, ballot, last committed decree) -> (the canonical wire dict, its configuration). A replica server
# sees about one configuration per partition it hosts; the cache is emptied when it grows past the limit.
_decoded_configs: dict[tuple[int, int, int, int], tuple[dict, PartitionConfiguration]] = {}
_DECODED_CONFIGS_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class ReplicaReport:
    """What a replica server tells the meta server about one replica in each beacon (rpc.md)."""

    gpid: Gpid
    ballot: int
    status: PartitionStatus
    last_committed_decree: int
    last_durable_decree: int

    def to_wire(self) -> dict:
        return {
            "gpid": list(self.gpid),
            "ballot": self.ballot,
            "status": self.status.value,
            "last_committed_decree": self.last_committed_decree,
            "last_durable_decree": self.last_durable_decree,
        }

    @classmethod
    def from_wire(cls, data: Any) -> "ReplicaReport":
        what = "replica report"
        try:
            status = PartitionStatus(wire_field(data, "status", str, what))
        except ValueError:
            raise WireFormatError(f"{what}: unknown status {data['status']!r}") from None
        return cls(wire_gpid(data, what), wire_field(data, "ballot", int, what), status,
                   wire_field(data, "last_committed_decree", int, what),
                   wire_field(data, "last_durable_decree", int, what))


class RequestKind(str, enum.Enum):
    REMOVE = "remove"  # the primary found this secondary or learner unresponsive
    UPGRADE = "upgrade"  # the primary found this learner caught up


@dataclass(frozen=True, slots=True)
class ConfigChangeRequest:
    """A primary asks the meta server to change its partition's configuration (at ``ballot``)."""

    gpid: Gpid
    ballot: int
    kind: RequestKind
    node: str
    reporter: str

    def to_wire(self) -> dict:
        return {"gpid": list(self.gpid), "ballot": self.ballot, "kind": self.kind.value, "node": self.node,
                "reporter": self.reporter}

    @classmethod
    def from_wire(cls, data: Any) -> "ConfigChangeRequest":
        what = "configuration change request"
        try:
            kind = RequestKind(wire_field(data, "kind", str, what))
        except ValueError:
            raise WireFormatError(f"{what}: unknown kind {data['kind']!r}") from None
        return cls(wire_gpid(data, what), wire_field(data, "ballot", int, what), kind,
                   wire_field(data, "node", str, what), wire_field(data, "reporter", str, what))


# ------------------------------------------------------------------------------------------------ tunables


@dataclass(frozen=True)
class ReplicationOptions:
    """Tunables of the replication core. Times are seconds on the clock the edge passes as ``now``."""

    max_inflight_mutations: int = 32  # the prepare window: prepared but uncommitted mutations
    max_batch_ops: int = 64  # client write ops folded into one mutation
    # While mutations are in flight, a new one starts only once this many client writes are queued: under
    # load, writes fold into fewer, larger mutations (fewer messages and log records per write) while the
    # window still pipelines them. Whatever is queued goes out as soon as nothing is in flight.
    min_batch_when_busy: int = 1
    max_batch_bytes: int = 1 << 20
    prepare_retry_seconds: float = 0.5  # resend prepares a member has not acknowledged
    prepare_timeout_seconds: float = 3.0  # a member silent or stuck this long is reported to the meta server
    group_check_seconds: float = 1.0  # the primary's periodic commit-point broadcast and liveness probe
    learn_retry_seconds: float = 2.0  # a learner re-asks when a learn round got no answer or stalled
    meta_request_retry_seconds: float = 1.0  # re-send a remove/upgrade request until the ballot moves
    # A follower read the edge gave no deadline waits at most this long for its primary's commit point (a round
    # trip between two replica servers), then fails, and the client asks the primary.
    follower_read_timeout_seconds: float = 1.0
    keep_committed_mutations: int = 256  # committed mutations kept in memory for lagging members and learners
    max_buffered_prepares: int = 1024  # out-of-order prepares (and those arriving while learning) kept
    # A learn response carries at most this many bytes of mutations (at least one): a learner far behind
    # catches up over several rounds, each well inside the transport's frame limit.
    max_learn_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        for name in ("max_inflight_mutations", "max_batch_ops", "min_batch_when_busy", "max_batch_bytes",
                     "keep_committed_mutations",
                     "max_buffered_prepares", "max_learn_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"replication option {name} must be >= 1, got {getattr(self, name)}")
        for name in ("prepare_retry_seconds", "prepare_timeout_seconds", "group_check_seconds",
                     "learn_retry_seconds", "meta_request_retry_seconds", "follower_read_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"replication option {name} must be > 0, got {getattr(self, name)}")
