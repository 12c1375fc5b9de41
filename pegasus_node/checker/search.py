"""The search for a linearization of one partition: Wing & Gong's algorithm with Lowe's memoization, in the
shape Porcupine gives it, plus reductions for operations whose outcome is unknown.

The required operations (those that returned with a known output) become a doubly linked list of call and
return entries in time order (a call before a return at the same instant: touching operations are
concurrent). The search walks the list from the front: at a call entry it tries to linearize that operation
now (the model must accept its output); if the model accepts and the configuration (set of linearized
operations as a bitset, resulting state) was never seen, the call and return entries are unlinked and the
walk restarts from the front. Reaching a return entry means that operation should have been linearized
already: the last choice is undone (entries relinked, state restored) and the walk moves past it. The
history is linearizable when no return entry is left, and is not when there is nothing left to undo.

An operation that never returned and that the model accepts in any state (a timed-out write) is "optional":
it may take effect at any point after its call, or never (which is the same as last of all). Such
operations sit in a second list, holding only calls, and are tried only after the required candidates, just
before the walk would give up at a return entry ("just in time"). Every linearization can be rearranged so
that it obeys the rules below, so the search only looks for ones that do:
- An optional operation must matter before its effect is overwritten. From the first optional operation
  placed, the search also follows the "shadow" state, the state without the optional operations placed
  since; the group is justified once an operation could not have been placed in the shadow state (a read
  that saw the optional write). Until then a blind write may not be placed, since it would hide the whole
  group: moving the group to the end gives the same outcome. The shadow is part of the memo key.
- An optional operation that would leave the state as it is (a cas whose comparison fails) is not placed.
- Of several identical optional operations (same input and output), only the earliest unused one is tried.
- A configuration is skipped when a configuration that failed already had the same required operations
  placed and the same state, a subset of its optional operations used, and no shadow or the same one
  (having more optional operations left can only help).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

from pegasus_node.checker.history import Operation
from pegasus_node.checker.models import Model

# how many search steps between two looks at the clock; a clock read costs more than a step
_CLOCK_EVERY = 4096
_CALL, _RETURN, _TAIL = 0, 1, 2
_DOMINANCE_SCAN = 16


class _NoShadow:
    """No optional operation is waiting to be justified (a class, so no state can be equal to it)."""

    def __repr__(self) -> str:
        return "NO_SHADOW"


_NO_SHADOW = _NoShadow()


class TimedOut(Exception):
    pass


@dataclass(frozen=True)
class Failure:
    """Where the search got furthest: the longest linearizable prefix and the operation that could not be
    placed after it (its return came first), with the state the prefix leaves."""

    prefix: tuple[Operation, ...]
    failed_op: Operation
    state: Hashable


def search(model: Model, ops: Sequence[Operation], deadline: float | None) -> Failure | None:
    """Returns None if ``ops`` is linearizable under ``model``, else a Failure. Raises TimedOut once
    ``time.monotonic()`` passes ``deadline``."""
    n = len(ops)
    optional = [not op.returned and model.always_legal(op.input, op.output) for op in ops]
    events = []
    for i, op in enumerate(ops):
        events.append((op.call_time, 0, i))
        if not optional[i]:
            events.append((op.return_time if op.returned else math.inf, 1, i))
    events.sort()

    # Nodes: 0 and 1 head the required and optional lists, 2 ends the required list, then one node per
    # event numbered in time order (so comparing nodes compares times), and last the optional list's end.
    head, opt_head, tail = 0, 1, 2
    size = len(events) + 4
    opt_tail = size - 1
    nxt = [0] * size
    prv = [0] * size
    kind = [_CALL] * size
    kind[tail] = _TAIL
    ret_node = [0] * size
    op_of = [0] * size
    node_in: list[Any] = [None] * size
    node_out: list[Any] = [None] * size
    node_bit = [0] * size
    node_blind = [False] * size
    twin = [-1] * size  # an optional call's earlier identical optional call, if any
    call_node = [0] * n
    last_required, last_optional = head, opt_head
    latest_twin: dict[tuple[Any, Any], int] = {}
    for node, (_, is_return, i) in enumerate(events, 3):
        op_of[node] = i
        if is_return:
            kind[node] = _RETURN
            ret_node[call_node[i]] = node
        else:
            call_node[i] = node
            op = ops[i]
            node_in[node], node_out[node], node_bit[node] = op.input, op.output, 1 << i
            node_blind[node] = model.is_blind_write(op.input, op.output)
        if optional[i]:
            nxt[last_optional], prv[node], last_optional = node, last_optional, node
            twin_key = _twin_key(ops[i])
            if twin_key is not None:
                twin[node] = latest_twin.get(twin_key, -1)
                latest_twin[twin_key] = node
        else:
            nxt[last_required], prv[node], last_required = node, last_required, node
    nxt[last_required], prv[tail] = tail, last_required
    nxt[last_optional], prv[opt_tail] = opt_tail, last_optional

    required_mask = sum(1 << i for i in range(n) if not optional[i])
    has_optional = required_mask != (1 << n) - 1
    step = model.step
    state = model.init()
    shadow: Hashable = _NO_SHADOW
    linearized = 0
    seen: set[tuple[Hashable, ...]] = set()
    # failed configurations by (required operations placed, state): their optional operations and shadow
    failed: dict[tuple[int, Hashable], list[tuple[int, Hashable]]] = {}
    # (node placed, state and shadow before it, return entry that was blocking when it was chosen)
    calls: list[tuple[int, Hashable, Hashable, int]] = []
    best: Failure | None = None
    best_len = -1
    blocked = 0  # while trying optional calls: the first return entry left, which ends their candidates
    entry = nxt[head]
    countdown = _CLOCK_EVERY
    while True:
        countdown -= 1
        if not countdown:
            countdown = _CLOCK_EVERY
            if deadline is not None and time.monotonic() > deadline:
                raise TimedOut
        if blocked:
            is_candidate = entry < blocked  # entry is an optional call or the optional list's tail
        else:
            entry_kind = kind[entry]
            if entry_kind == _TAIL:
                return None  # all required operations placed; optional ones left over never happened
            is_candidate = entry_kind == _CALL
            if not is_candidate:
                # the walk reached a return: try the optional calls made before it, earliest first
                blocked = entry
                entry = nxt[opt_head]
                is_candidate = entry < blocked
        if is_candidate:
            # a blind write would hide the unjustified optional group; an optional operation is not needed
            # while an identical one, called earlier, is still unused
            if (shadow is not _NO_SHADOW and node_blind[entry]) or (
                blocked and twin[entry] >= 0 and not linearized & node_bit[twin[entry]]
            ):
                entry = nxt[entry]
                continue
            ok, new_state = step(state, node_in[entry], node_out[entry])
            if ok and blocked:
                # an optional operation that changes nothing may as well go last
                ok = new_state != state
                new_shadow = state if shadow is _NO_SHADOW else shadow
            elif ok and shadow is not _NO_SHADOW:
                legal_in_shadow, new_shadow = step(shadow, node_in[entry], node_out[entry])
                if not legal_in_shadow:
                    new_shadow = _NO_SHADOW  # the optional group made this possible: it mattered
            else:
                new_shadow = _NO_SHADOW
            if ok:
                new_linearized = linearized | node_bit[entry]
                if new_shadow is _NO_SHADOW:
                    key: tuple[Hashable, ...] = (new_linearized, new_state)
                else:
                    key = (new_linearized, new_state, new_shadow)
                if key not in seen and not (
                    has_optional and _dominated(failed, new_state, new_shadow, new_linearized, required_mask)
                ):
                    seen.add(key)
                    calls.append((entry, state, shadow, blocked))
                    state, shadow, linearized = new_state, new_shadow, new_linearized
                    before, after = prv[entry], nxt[entry]
                    nxt[before], prv[after] = after, before
                    if not blocked:
                        ret = ret_node[entry]
                        before, after = prv[ret], nxt[ret]
                        nxt[before], prv[after] = after, before
                    blocked = 0
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
            continue
        # a dead end: the blocking return's operation cannot be placed after what is placed so far
        if len(calls) > best_len:
            best_len = len(calls)
            best = Failure(tuple(ops[op_of[c[0]]] for c in calls), ops[op_of[blocked]], state)
        if not calls:
            return best
        if has_optional:
            failed.setdefault((linearized & required_mask, state), []).append((linearized & ~required_mask, shadow))
        entry, state, shadow, blocked = calls.pop()
        linearized ^= node_bit[entry]
        if not blocked:
            ret = ret_node[entry]
            nxt[prv[ret]] = ret
            prv[nxt[ret]] = ret
        nxt[prv[entry]] = entry
        prv[nxt[entry]] = entry
        entry = nxt[entry]


def _dominated(
    failed: dict[tuple[int, Hashable], list[tuple[int, Hashable]]],
    state: Hashable,
    shadow: Hashable,
    linearized: int,
    required_mask: int,
) -> bool:
    """True if a failed configuration had the same required operations placed and this state, had used a
    subset of these optional operations, and had no shadow or this one."""
    used = linearized & ~required_mask
    # only the latest few: a long scan per step would cost more than the search it saves
    for other_used, other_shadow in failed.get((linearized & required_mask, state), ())[-_DOMINANCE_SCAN:]:
        if not other_used & ~used and (other_shadow is _NO_SHADOW or other_shadow == shadow):
            return True
    return False


def _twin_key(op: Operation) -> tuple[Any, Any] | None:
    try:
        key = (op.input, op.output)
        hash(key)
    except TypeError:
        return None
    return key
