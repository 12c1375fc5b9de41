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
    secondary ─ReadIndexRequest─► primary                ("what is your commit point?", for follower reads)
    secondary ◄─ReadIndexReply── primary                 (the commit point, if it serves with a valid lease)
    anyone  ◄─StaleBallot────── anyone                   ("your ballot is old; here is my config")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple

import msgpack

from pegasus_node.errors import ErrorCode
from pegasus_node.replication.config import (
    Gpid,
    PartitionConfiguration,
    PartitionStatus,
    WireFormatError,
    wire_field,
    wire_gpid,
)
from pegasus_node.storage.mutation import Mutation


def _decode_mutation(raw: Any, what: str) -> Mutation:
    if not isinstance(raw, bytes):
        raise WireFormatError(f"{what}: a mutation must be bytes, got {type(raw).__name__}")
    try:
        mutation = Mutation.decode(raw)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireFormatError(f"{what}: undecodable mutation ({exc})") from None
    # msgpack decodes integers to exact ints, so `type(x) is int` is the wire's "an integer, not a boolean"
    if not (type(mutation.ballot) is int and type(mutation.decree) is int and type(mutation.last_committed) is int
            and type(mutation.timestamp_us) is int):
        raise WireFormatError(f"{what}: a mutation's ballot, decree, last_committed and timestamp must be integers")
    if mutation.decree < 1 or mutation.last_committed >= mutation.decree:
        raise WireFormatError(f"{what}: mutation decree {mutation.decree} with last_committed "
                              f"{mutation.last_committed} is impossible")
    return mutation


def _field(data: dict, name: str, kind: type, what: str) -> Any:
    """``wire_field`` for one exact type, with the common case first."""
    value = data.get(name)
    return value if type(value) is kind else wire_field(data, name, kind, what)


def _decode_gpid(data: dict, name: str, what: str) -> Gpid:
    raw = data.get(name)
    if type(raw) is list and len(raw) == 2 and type(raw[0]) is int and type(raw[1]) is int:
        return (raw[0], raw[1])
    return wire_gpid(data, what)


def _decode_status(data: dict, name: str, what: str) -> PartitionStatus:
    try:
        return PartitionStatus(wire_field(data, name, str, what))
    except ValueError:
        raise WireFormatError(f"{what}: unknown status {data[name]!r}") from None


def _decode_error(data: dict, name: str, what: str) -> ErrorCode:
    code = wire_field(data, name, int, what)
    try:
        return ErrorCode(code)
    except ValueError:
        raise WireFormatError(f"{what}: unknown error code {code}") from None


def _decode_any(data: dict, name: str, what: str) -> Any:
    if name not in data:
        raise WireFormatError(f"{what}: missing field {name!r}")
    return data[name]


class _Kind(NamedTuple):
    plain: type | None  # a value of exactly this type is taken as it is, without calling decode
    decode: Callable[[dict, str, str], Any]  # (data, name, what) -> value; raises WireFormatError
    encode: Callable[[Any], Any] | None  # None: the value goes on the wire as it is


def _plain(kind: type) -> _Kind:
    return _Kind(kind, lambda data, name, what: wire_field(data, name, kind, what), None)


_KINDS: dict[str, _Kind] = {
    "int": _plain(int),
    "str": _plain(str),
    "bool": _plain(bool),
    "any": _Kind(None, _decode_any, None),
    "gpid": _Kind(None, _decode_gpid, list),
    "config": _Kind(None, lambda data, name, what: PartitionConfiguration.from_wire(_field(data, name, dict, what)),
                    PartitionConfiguration.shared_wire),
    "mutation": _Kind(None, lambda data, name, what: _decode_mutation(_field(data, name, bytes, what), what),
                      Mutation.encode),
    "mutations": _Kind(None, lambda data, name, what: tuple(_decode_mutation(raw, what)
                                                            for raw in wire_field(data, name, (list, tuple), what)),
                       lambda mutations: [m.encode() for m in mutations]),
    "status": _Kind(None, _decode_status, lambda status: status.value),
    "error": _Kind(None, _decode_error, int),
}


_MISSING = object()


class _Message:
    """Declarative codec: ``WIRE`` maps each field, in declaration order, to its wire kind. A field with a
    default may be missing on the wire (a peer of an older version does not send it): it then takes its default."""

    __slots__ = ()
    TYPE: ClassVar[str]
    WIRE: ClassVar[dict[str, str]]
    # Derived from WIRE when a message class is defined, so that coding a message looks nothing up by kind.
    _WHAT: ClassVar[str]
    _ENCODERS: ClassVar[tuple]
    _DECODERS: ClassVar[tuple]
    _DEFAULTS: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._WHAT = "replication message " + cls.TYPE
        cls._ENCODERS = tuple((name, _KINDS[kind].encode) for name, kind in cls.WIRE.items())
        cls._DECODERS = tuple((name, _KINDS[kind].plain, _KINDS[kind].decode) for name, kind in cls.WIRE.items())
        cls._DEFAULTS = {}  # filled in once the dataclass exists (below the message classes)

    def to_wire(self) -> dict:
        out = {"type": self.TYPE}
        for name, encode in self._ENCODERS:
            value = getattr(self, name)
            out[name] = value if encode is None else encode(value)
        return out

    @classmethod
    def from_wire(cls, data: dict) -> Any:
        what = cls._WHAT
        values = []
        for name, plain, decode in cls._DECODERS:
            value = data.get(name, _MISSING)
            # the plain ints and strings that make up most of every message are taken as they are
            if type(value) is plain:
                values.append(value)
            elif value is _MISSING and name in cls._DEFAULTS:
                values.append(cls._DEFAULTS[name])
            else:
                values.append(decode(data, name, what))
        return cls(*values)  # WIRE lists the fields in declaration order (checked below)


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
    """A learner asks for everything after ``committed`` (its state up to there is final). ``by_reference``: it
    can fetch a checkpoint named in the response in chunks; a learner of an older version cannot (it does not
    send the field), and gets the checkpoint's bytes inside the response."""

    TYPE: ClassVar[str] = "learn_request"
    WIRE: ClassVar[dict[str, str]] = {**_COMMON, "learn_id": "int", "committed": "int", "by_reference": "bool"}
    gpid: Gpid
    ballot: int
    sender: str
    learn_id: int
    committed: int
    by_reference: bool = False


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


@dataclass(frozen=True, slots=True)
class ReadIndexRequest(_Message):
    """A secondary asks its primary for the commit point, for the follower reads it received since its last
    request (one request for all of them)."""

    TYPE: ClassVar[str] = "read_index_request"
    WIRE: ClassVar[dict[str, str]] = {**_COMMON, "request_id": "int"}
    gpid: Gpid
    ballot: int
    sender: str
    request_id: int


@dataclass(frozen=True, slots=True)
class ReadIndexReply(_Message):
    """The primary's commit point when the request arrived (``error`` ERR_OK), given only while it serves with a
    valid lease and has reconciled; otherwise ``error`` says why not and ``committed`` is 0."""

    TYPE: ClassVar[str] = "read_index_reply"
    WIRE: ClassVar[dict[str, str]] = {**_COMMON, "request_id": "int", "committed": "int", "error": "error"}
    gpid: Gpid
    ballot: int
    sender: str
    request_id: int
    committed: int
    error: ErrorCode


MESSAGE_TYPES: dict[str, type] = {
    cls.TYPE: cls
    for cls in (Prepare, PrepareAck, GroupCheck, GroupCheckReply, LearnRequest, LearnResponse, StaleBallot,
                ReadIndexRequest, ReadIndexReply)
}

for _cls in MESSAGE_TYPES.values():
    if tuple(_cls.WIRE) != tuple(f.name for f in dataclasses.fields(_cls)):
        raise TypeError(f"{_cls.__name__}.WIRE must list its fields in declaration order")
    _cls._DEFAULTS = {f.name: f.default for f in dataclasses.fields(_cls) if f.default is not dataclasses.MISSING}

Message = (Prepare | PrepareAck | GroupCheck | GroupCheckReply | LearnRequest | LearnResponse | StaleBallot
           | ReadIndexRequest | ReadIndexReply)


def decode_message(data: Any) -> Message:
    """The message a wire dict holds; raises WireFormatError (a ValueError) naming what is wrong."""
    if not isinstance(data, dict):
        raise WireFormatError(f"a replication message must be a map, got {type(data).__name__}")
    kind = data.get("type")
    cls = MESSAGE_TYPES.get(kind) if type(kind) is str else None  # a list or map as the type is unhashable
    if cls is None:
        raise WireFormatError(f"unknown replication message type {kind!r}")
    return cls.from_wire(data)
