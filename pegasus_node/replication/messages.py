"""Messages between the replicas of one partition.

Each message is a frozen dataclass with ``to_wire()`` (a msgpack-able dict with a ``"type"`` key) and a
matching ``decode_message(dict)``, so an edge sends them unchanged as the body of one RPC. Every message
carries the partition (``gpid``), the sender's ``ballot`` and the sender's address.

Flow (see the package docstring for the whole protocol):

    primary ──Prepare──────────► secondary / learner      (a mutation, with the config and commit point)
    primary ◄─PrepareAck──────── secondary / learner      (cumulative: "I hold durably all up to d")
    primary ──GroupCheck───────► secondary / learner      (periodic: config, commit point, last prepared)
    primary ◄─GroupCheckReply── secondary / learner
    learner ──LearnRequest─────► primary                  ("I hold everything committed up to d")
    learner ◄─LearnResponse──── primary                  (checkpoint and/or mutations from d + 1 on)
    anyone  ◄─StaleBallot────── anyone                   ("your ballot is old; here is my config")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from pegasus_node.replication.config import (
    Gpid,
    PartitionConfiguration,
    PartitionStatus,
    WireFormatError,
    wire_field,
    wire_gpid,
)
from pegasus_node.storage.mutation import Mutation


def _encode_value(kind: str, value: Any) -> Any:
    if kind == "int" or kind == "str" or kind == "bool" or kind == "any":
        return value
    if kind == "config":
        return value.to_wire()
    if kind == "mutation":
        return value.encode()
    if kind == "mutations":
        return [m.encode() for m in value]
    if kind == "status":
        return value.value
    if kind == "gpid":
        return list(value)
    return value


def _decode_mutation(raw: Any, what: str) -> Mutation:
    if not isinstance(raw, bytes):
        raise WireFormatError(f"{what}: a mutation must be bytes, got {type(raw).__name__}")
    try:
        mutation = Mutation.decode(raw)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireFormatError(f"{what}: undecodable mutation ({exc})") from None
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in
               (mutation.ballot, mutation.decree, mutation.last_committed, mutation.timestamp_us)):
        raise WireFormatError(f"{what}: a mutation's ballot, decree, last_committed and timestamp must be integers")
    if mutation.decree < 1 or mutation.last_committed >= mutation.decree:
        raise WireFormatError(f"{what}: mutation decree {mutation.decree} with last_committed "
                              f"{mutation.last_committed} is impossible")
    return mutation


def _decode_status(data: dict, name: str, what: str) -> PartitionStatus:
    try:
        return PartitionStatus(wire_field(data, name, str, what))
    except ValueError:
        raise WireFormatError(f"{what}: unknown status {data[name]!r}") from None


def _decode_any(data: dict, name: str, what: str) -> Any:
    if name not in data:
        raise WireFormatError(f"{what}: missing field {name!r}")
    return data[name]


_DECODERS = {
    "gpid": lambda data, name, what: wire_gpid(data, what),
    "int": lambda data, name, what: wire_field(data, name, int, what),
    "str": lambda data, name, what: wire_field(data, name, str, what),
    "bool": lambda data, name, what: wire_field(data, name, bool, what),
    "config": lambda data, name, what: PartitionConfiguration.from_wire(wire_field(data, name, dict, what)),
    "mutation": lambda data, name, what: _decode_mutation(wire_field(data, name, bytes, what), what),
    "mutations": lambda data, name, what: tuple(_decode_mutation(raw, what)
                                                for raw in wire_field(data, name, (list, tuple), what)),
    "status": _decode_status,
    "any": _decode_any,
}


class _Message:
    """Declarative codec: ``WIRE`` maps each field, in declaration order, to its wire kind."""

    __slots__ = ()
    TYPE: ClassVar[str]
    WIRE: ClassVar[dict[str, str]]

    def to_wire(self) -> dict:
        out = {"type": self.TYPE}
        for name, kind in self.WIRE.items():
            out[name] = _encode_value(kind, getattr(self, name))
        return out

    @classmethod
    def from_wire(cls, data: dict) -> Any:
        what = "replication message " + cls.TYPE
        values = {}
        for name, kind in cls.WIRE.items():
            value = data.get(name)
            # fast path for the plain fields that make up most of every message
            if (kind == "int" and type(value) is int) or (kind == "str" and type(value) is str):
                values[name] = value
            elif kind == "gpid" and type(value) is list and len(value) == 2 and type(value[0]) is int \
                    and type(value[1]) is int:
                values[name] = (value[0], value[1])
            else:
                values[name] = _DECODERS[kind](data, name, what)
        return cls(**values)


_COMMON = {"gpid": "gpid", "ballot": "int", "sender": "str"}


@dataclass(frozen=True, slots=True)
class Prepare(_Message):
    """Log this mutation (it carries the primary's ballot) and acknowledge once it is durable."""

    TYPE: ClassVar[str] = "prepare"
    WIRE: ClassVar[dict[str, str]] = {**_COMMON, "config": "config", "mutation": "mutation", "committed": "int"}
    gpid: Gpid
    ballot: int
    sender: str
    config: PartitionConfiguration
    mutation: Mutation
    committed: int  # the primary's commit point when this copy was sent


@dataclass(frozen=True, slots=True)
class PrepareAck(_Message):
    """Cumulative: the sender durably holds the primary's mutations for every decree up to ``acked``."""

    TYPE: ClassVar[str] = "prepare_ack"
    WIRE: ClassVar[dict[str, str]] = {**_COMMON, "acked": "int"}
    gpid: Gpid
    ballot: int
    sender: str
    acked: int


@dataclass(frozen=True, slots=True)
class GroupCheck(_Message):
    TYPE: ClassVar[str] = "group_check"
    WIRE: ClassVar[dict[str, str]] = {**_COMMON, "config": "config", "committed": "int", "last_prepared": "int"}
    gpid: Gpid
    ballot: int
    sender: str
    config: PartitionConfiguration
    committed: int
    last_prepared: int


@dataclass(frozen=True, slots=True)
class GroupCheckReply(_Message):
    TYPE: ClassVar[str] = "group_check_reply"
    WIRE: ClassVar[dict[str, str]] = {**_COMMON, "status": "status", "acked": "int", "learning": "bool"}
    gpid: Gpid
    ballot: int
    sender: str
    status: PartitionStatus
    acked: int
    learning: bool


@dataclass(frozen=True, slots=True)
class LearnRequest(_Message):
    """A learner asks for everything after ``committed`` (its state up to there is final)."""

    TYPE: ClassVar[str] = "learn_request"
    WIRE: ClassVar[dict[str, str]] = {**_COMMON, "learn_id": "int", "committed": "int"}
    gpid: Gpid
    ballot: int
    sender: str
    learn_id: int
    committed: int


@dataclass(frozen=True, slots=True)
class LearnResponse(_Message):
    """Catch-up data: an optional checkpoint (opaque to the core, installed by the edge) at
    ``checkpoint_decree``, then the primary's mutations contiguously after it (or after the learner's
    committed decree when there is no checkpoint), up to the primary's last prepared decree."""

    TYPE: ClassVar[str] = "learn_response"
    WIRE: ClassVar[dict[str, str]] = {**_COMMON, "config": "config", "learn_id": "int", "committed": "int",
                                      "checkpoint_decree": "int", "checkpoint": "any", "mutations": "mutations"}
    gpid: Gpid
    ballot: int
    sender: str
    config: PartitionConfiguration
    learn_id: int
    committed: int
    checkpoint_decree: int
    checkpoint: Any
    mutations: tuple[Mutation, ...]


@dataclass(frozen=True, slots=True)
class StaleBallot(_Message):
    """The receiver's ballot is older than the sender's, whose configuration comes along."""

    TYPE: ClassVar[str] = "stale_ballot"
    WIRE: ClassVar[dict[str, str]] = {**_COMMON, "config": "config"}
    gpid: Gpid
    ballot: int
    sender: str
    config: PartitionConfiguration


MESSAGE_TYPES: dict[str, type] = {
    cls.TYPE: cls
    for cls in (Prepare, PrepareAck, GroupCheck, GroupCheckReply, LearnRequest, LearnResponse, StaleBallot)
}

Message = Prepare | PrepareAck | GroupCheck | GroupCheckReply | LearnRequest | LearnResponse | StaleBallot


def decode_message(data: Any) -> Message:
    """The message a wire dict holds; raises WireFormatError (a ValueError) naming what is wrong."""
    if not isinstance(data, dict):
        raise WireFormatError(f"a replication message must be a map, got {type(data).__name__}")
    cls = MESSAGE_TYPES.get(data.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise WireFormatError(f"unknown replication message type {data.get('type')!r}")
    return cls.from_wire(data)
