"""Check the shape of a request body before a handler trusts it.

msgpack gives handlers plain dicts, lists, ints, bytes and strs; ``expect`` turns a wrong shape into
``ERR_INVALID_PARAMETERS`` naming the field, instead of a KeyError deep inside a handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pegasus_node.errors import invalid_parameters

FieldType = type | tuple[type | None, ...] | None

_NAMES = {type(None): "None", dict: "map", list: "list"}


def _type_name(t: type | None) -> str:
    if t is None:
        return "None"
    return _NAMES.get(t, t.__name__)


def _normalise(expected: FieldType) -> tuple[type, ...]:
    if not isinstance(expected, tuple):
        expected = (expected,)
    return tuple(type(None) if t is None else t for t in expected)


def _matches(value: Any, allowed: tuple[type, ...]) -> bool:
    kind = type(value)
    if kind in allowed or object in allowed:
        return True
    if kind is bool:  # bool subclasses int, but True is not a partition count
        return False
    if kind is int and float in allowed:
        return True
    # Subclasses (an IntEnum member, an OrderedDict) are fine, but bytes stays bytes: no bytearray or str.
    return any(t not in (bytes, float) and isinstance(value, t) for t in allowed)


def check_field(name: str, value: Any, expected: FieldType) -> Any:
    """Return ``value`` if it has one of the ``expected`` types, else raise ERR_INVALID_PARAMETERS."""
    if type(value) is expected:  # the common case, on every field of every request: no tuple built
        return value
    allowed = _normalise(expected)
    if not _matches(value, allowed):
        wanted = " or ".join(_type_name(t) for t in allowed)
        raise invalid_parameters(f"field {name!r} must be {wanted}, not {_type_name(type(value))}")
    return value


def expect(
    body: Any,
    fields: Mapping[str, FieldType],
    optional: Mapping[str, FieldType] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate ``body`` as a map and return the declared fields.

    ``fields`` are required; ``optional`` fields are returned when present, or taken from ``defaults``
    when missing (and left out when there is no default). Types are a type, ``None``, or a tuple of them
    (``(int, None)``); ``object`` accepts anything. ``int`` never accepts ``bool``; ``float`` accepts
    ``int``; ``bytes`` accepts bytes only. Undeclared fields are ignored, so that peers may add fields.

    Raises ``PegasusError(ERR_INVALID_PARAMETERS, "field 'x' must be int, not str")`` and the like.
    """
    if not isinstance(body, dict):
        raise invalid_parameters(f"request body must be a map, not {_type_name(type(body))}")
    result: dict[str, Any] = {}
    for name, expected in fields.items():
        if name not in body:
            raise invalid_parameters(f"missing field {name!r}")
        result[name] = check_field(name, body[name], expected)
    if optional:
        for name, expected in optional.items():
            if name in body:
                result[name] = check_field(name, body[name], expected)
            elif defaults is not None and name in defaults:
                result[name] = defaults[name]
    return result
