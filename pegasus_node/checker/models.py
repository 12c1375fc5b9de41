"""Sequential specifications ("models") that a history is checked against.

A model says what a single correct, sequential server would answer: ``init()`` gives the first state and
``step(state, input, output)`` says whether ``output`` is a legal answer to ``input`` in ``state`` and what
state follows. States must be immutable and hashable (None, numbers, str, bytes, tuples, frozensets): the
checker memoizes (linearized set, state) pairs in a hash set, so equal states must hash equal.

``partition`` splits a history into independent sub-histories (one per key for a key-value store): a history
is linearizable if and only if every sub-history is, and checking them separately is exponentially cheaper.
"""

from __future__ import annotations

from typing import Any, Hashable, NamedTuple, Sequence

from pegasus_node.checker.history import UNKNOWN, Operation

GET = "get"
READ = "read"
SET = "set"
PUT = "put"
WRITE = "write"
APPEND = "append"
DELETE = "delete"
CAS = "cas"

_READS = frozenset({GET, READ})
_SETS = frozenset({SET, PUT, WRITE})
KINDS = _READS | _SETS | {APPEND, DELETE, CAS}
_BLIND = _SETS | {DELETE}
_ALWAYS_LEGAL = _BLIND | {APPEND}


class Model:
    """Base class: override ``step`` (and ``init`` / ``partition`` when the defaults do not fit)."""

    def init(self) -> Hashable:
        return None

    def step(self, state: Hashable, input: Any, output: Any) -> tuple[bool, Hashable]:
        raise TypeError(f"{type(self).__name__} does not define step()")

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        return [list(history)] if history else []

    def partition_label(self, sub_history: Sequence[Operation]) -> str:
        return "history"

    def input_error(self, input: Any) -> str | None:
        """What is wrong with ``input`` for this model, or None if nothing is; checked before searching."""
        return None

    def is_read_only(self, input: Any) -> bool:
        """True for inputs that never change the state: when their outcome is unknown they are dropped."""
        return False

    def always_legal(self, input: Any, output: Any) -> bool:
        """True if ``step`` accepts this operation in every state. Such an operation that never returned
        may be put off to the end of the history (where it changes nothing anyone saw), so the checker
        need not linearize it at all once everything else is. False is always safe, only slower."""
        return False

    def is_blind_write(self, input: Any, output: Any) -> bool:
        """True if ``step`` accepts this operation in every state and the state after it does not depend on
        the state before it (a plain overwrite). The checker then never places an operation that never
        returned right before it, since its effect would be overwritten at once. False is always safe."""
        return False

    def describe_operation(self, op: Operation) -> str:
        out = "unknown" if op.output is UNKNOWN else repr(op.output)
        return f"{op.input!r} -> {out}"

    def describe_state(self, state: Hashable) -> str:
        return repr(state)


class KvOp(NamedTuple):
    """One key-value request. ``kind`` is one of KINDS; ``value`` is the value written (set/put/append/cas);
    ``expected`` is the value a cas requires (None: the key must be absent)."""

    kind: str
    key: Hashable = None
    value: Any = None
    expected: Any = None


def kv_get(key: Hashable) -> KvOp:
    return KvOp(GET, key)


def kv_set(key: Hashable, value: Any) -> KvOp:
    return KvOp(SET, key, value)


def kv_append(key: Hashable, value: Any) -> KvOp:
    return KvOp(APPEND, key, value)


def kv_delete(key: Hashable) -> KvOp:
    return KvOp(DELETE, key)


def kv_cas(key: Hashable, expected: Any, new_value: Any) -> KvOp:
    return KvOp(CAS, key, new_value, expected)


class KvModel(Model):
    """A key-value store checked one key at a time; the state is the key's value (None: absent).

    Outputs: get -> the value read (None: absent); set/put/append/delete -> ignored (record only writes
    that succeeded or whose outcome is UNKNOWN, never ones that definitely failed); cas -> True if it
    swapped, False if the comparison failed. UNKNOWN is accepted for any kind. ``initial`` is the value
    of a key nobody wrote (Jepsen's kv histories read "" there).
    """

    def __init__(self, initial: Hashable = None) -> None:
        self.initial = initial

    def init(self) -> Hashable:
        return self.initial

    def step(self, state: Hashable, input: KvOp, output: Any) -> tuple[bool, Hashable]:
        kind = input.kind
        if kind in _READS:
            return (output is UNKNOWN or output == state), state
        if kind in _SETS:
            return True, input.value
        if kind == CAS:
            swapped = state == input.expected
            new_state = input.value if swapped else state
            return (output is UNKNOWN or output == swapped), new_state
        if kind == APPEND:
            return True, input.value if state is None else state + input.value
        if kind == DELETE:
            return True, None
        raise ValueError(self.input_error(input))

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        by_key: dict[Hashable, list[Operation]] = {}
        for op in history:
            by_key.setdefault(op.input.key, []).append(op)
        return list(by_key.values())

    def partition_label(self, sub_history: Sequence[Operation]) -> str:
        return f"key {sub_history[0].input.key!r}" if sub_history else "empty history"

    def input_error(self, input: Any) -> str | None:
        if not isinstance(input, KvOp):
            return f"input {input!r} is not a KvOp"
        if input.kind not in KINDS:
            return f"unknown key-value operation kind {input.kind!r} (expected one of {sorted(KINDS)})"
        try:
            hash(input)
        except TypeError:
            return f"input {input!r} holds an unhashable key or value"
        return None

    def is_read_only(self, input: KvOp) -> bool:
        return input.kind in _READS

    def always_legal(self, input: KvOp, output: Any) -> bool:
        # writes ignore their output; reads and cas are checked against it unless it is unknown
        return output is UNKNOWN or input.kind in _ALWAYS_LEGAL

    def is_blind_write(self, input: KvOp, output: Any) -> bool:
        return input.kind in _BLIND

    def describe_operation(self, op: Operation) -> str:
        inp = op.input
        args = [repr(inp.key)] if self._shows_key() else []
        if inp.kind == CAS:
            args += [f"expect {inp.expected!r}", f"new {inp.value!r}"]
        elif inp.kind not in _READS and inp.kind != DELETE:
            args.append(repr(inp.value))
        call = f"{inp.kind}({', '.join(args)})"
        if op.output is UNKNOWN:
            return f"{call} -> unknown"
        if inp.kind in _READS or inp.kind == CAS:
            return f"{call} -> {op.output!r}"
        return call

    def _shows_key(self) -> bool:
        return True


class RegisterModel(KvModel):
    """A single compare-and-set register (read/write/cas; get/set/delete are accepted too). Keys, if any,
    are ignored: the whole history is one register, so it is not partitioned."""

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        return Model.partition(self, history)

    def partition_label(self, sub_history: Sequence[Operation]) -> str:
        return "register"

    def _shows_key(self) -> bool:
        return False
