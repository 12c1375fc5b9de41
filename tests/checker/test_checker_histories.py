"""Hand-made histories with a known answer: sequential, concurrent, unknown outcomes, cas, delete, several
keys, and a comparison against brute force on random small histories."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest

from pegasus_node.checker import (
    UNKNOWN,
    HistoryError,
    KvModel,
    KvOp,
    Model,
    Operation,
    Recorder,
    RegisterModel,
    Verdict,
    check,
    kv_append,
    kv_cas,
    kv_delete,
    kv_get,
    kv_set,
)

KV = KvModel()


def op(client: int, call: float, ret: float | None, input: Any, output: Any = None) -> Operation:
    return Operation(client, call, ret, input, output)


def verdict(history: list[Operation], model: Model = KV) -> Verdict:
    return check(history, model).verdict


# --- plain reads and writes -------------------------------------------------------------------------------


def test_empty_history_is_linearizable() -> None:
    result = check([], KV)
    assert result.ok and result.partitions == 0


def test_sequential_set_then_get() -> None:
    history = [op(0, 0, 1, kv_set("k", "a")), op(0, 2, 3, kv_get("k"), "a")]
    assert verdict(history) is Verdict.OK


def test_read_of_a_key_nobody_wrote_sees_none() -> None:
    assert verdict([op(0, 0, 1, kv_get("k"), None)]) is Verdict.OK
    assert verdict([op(0, 0, 1, kv_get("k"), "a")]) is Verdict.ILLEGAL


def test_stale_read_after_a_completed_write_is_illegal() -> None:
    history = [
        op(0, 0, 1, kv_set("k", "a")),
        op(0, 2, 3, kv_set("k", "b")),
        op(1, 4, 5, kv_get("k"), "a"),
    ]
    assert verdict(history) is Verdict.ILLEGAL


def test_read_concurrent_with_a_write_may_see_either_value() -> None:
    for seen in (None, "a"):
        history = [op(0, 0, 10, kv_set("k", "a")), op(1, 2, 3, kv_get("k"), seen)]
        assert verdict(history) is Verdict.OK


def test_reads_within_one_write_cannot_go_back_in_time() -> None:
    # both reads overlap the write, but the first read already saw the new value
    new_then_old = [
        op(0, 0, 10, kv_set("k", "a")),
        op(1, 1, 2, kv_get("k"), "a"),
        op(2, 3, 4, kv_get("k"), None),
    ]
    old_then_new = [
        op(0, 0, 10, kv_set("k", "a")),
        op(1, 1, 2, kv_get("k"), None),
        op(2, 3, 4, kv_get("k"), "a"),
    ]
    assert verdict(new_then_old) is Verdict.ILLEGAL
    assert verdict(old_then_new) is Verdict.OK


def test_operations_touching_at_one_instant_count_as_concurrent() -> None:
    # the read returns at 5 and the write is called at 5: the write may be ordered first
    history = [op(0, 5, 6, kv_set("k", "a")), op(1, 0, 5, kv_get("k"), "a")]
    assert verdict(history) is Verdict.OK


def test_register_examples_from_the_6824_quiz() -> None:
    model = RegisterModel()
    ok = [
        op(0, 0, 100, KvOp("write", value=100)),
        op(1, 25, 75, KvOp("read"), 100),
        op(2, 30, 60, KvOp("read"), None),
    ]
    bad = [
        op(0, 0, 100, KvOp("write", value=200)),
        op(1, 10, 30, KvOp("read"), 200),
        op(2, 40, 90, KvOp("read"), None),
    ]
    assert verdict(ok, model) is Verdict.OK
    assert verdict(bad, model) is Verdict.ILLEGAL


def test_append_concatenates_and_starts_from_absent() -> None:
    history = [
        op(0, 0, 1, kv_append("k", "x")),
        op(0, 2, 3, kv_append("k", "y")),
        op(1, 4, 5, kv_get("k"), "xy"),
    ]
    assert verdict(history) is Verdict.OK
    history[-1] = op(1, 4, 5, kv_get("k"), "yx")
    assert verdict(history) is Verdict.ILLEGAL


def test_concurrent_appends_may_land_in_either_order_but_not_both() -> None:
    appends = [op(0, 0, 10, kv_append("k", "x")), op(1, 0, 10, kv_append("k", "y"))]
    assert verdict(appends + [op(2, 11, 12, kv_get("k"), "yx")]) is Verdict.OK
    both_orders = appends + [op(2, 11, 12, kv_get("k"), "yx"), op(3, 13, 14, kv_get("k"), "xy")]
    assert verdict(both_orders) is Verdict.ILLEGAL


def test_delete_makes_the_key_absent() -> None:
    history = [
        op(0, 0, 1, kv_set("k", "a")),
        op(0, 2, 3, kv_delete("k")),
        op(1, 4, 5, kv_get("k"), None),
    ]
    assert verdict(history) is Verdict.OK
    history[-1] = op(1, 4, 5, kv_get("k"), "a")
    assert verdict(history) is Verdict.ILLEGAL


# --- compare-and-set --------------------------------------------------------------------------------------


def test_cas_from_absent_succeeds_once() -> None:
    one_wins = [op(0, 0, 10, kv_cas("k", None, "a"), True), op(1, 0, 10, kv_cas("k", None, "b"), False)]
    both_win = [op(0, 0, 10, kv_cas("k", None, "a"), True), op(1, 0, 10, kv_cas("k", None, "b"), True)]
    assert verdict(one_wins + [op(2, 11, 12, kv_get("k"), "a")]) is Verdict.OK
    assert verdict(one_wins + [op(2, 11, 12, kv_get("k"), "b")]) is Verdict.ILLEGAL
    assert verdict(both_win) is Verdict.ILLEGAL


def test_cas_must_fail_exactly_when_the_value_differs() -> None:
    base = [op(0, 0, 1, kv_set("k", "x"))]
    assert verdict(base + [op(0, 2, 3, kv_cas("k", "x", "y"), True), op(0, 4, 5, kv_get("k"), "y")]) is Verdict.OK
    assert verdict(base + [op(0, 2, 3, kv_cas("k", "x", "y"), False)]) is Verdict.ILLEGAL
    assert verdict(base + [op(0, 2, 3, kv_cas("k", "z", "y"), True)]) is Verdict.ILLEGAL
    failed = base + [op(0, 2, 3, kv_cas("k", "z", "y"), False), op(0, 4, 5, kv_get("k"), "x")]
    assert verdict(failed) is Verdict.OK


def test_register_model_cas_chain() -> None:
    model = RegisterModel()
    history = [
        op(0, 0, 1, KvOp("write", value=1)),
        op(1, 2, 6, KvOp("cas", value=2, expected=1), True),
        op(2, 3, 7, KvOp("cas", value=3, expected=2), True),
        op(3, 8, 9, KvOp("read"), 3),
    ]
    assert verdict(history, model) is Verdict.OK
    history[2] = op(2, 3, 7, KvOp("cas", value=3, expected=2), False)
    assert verdict(history, model) is Verdict.ILLEGAL


# --- unknown outcomes -------------------------------------------------------------------------------------


def test_write_that_never_returned_may_take_effect_later() -> None:
    history = [
        op(0, 0, None, kv_set("k", "a"), UNKNOWN),
        op(1, 1, 2, kv_get("k"), None),
        op(1, 50, 51, kv_get("k"), "a"),
    ]
    assert verdict(history) is Verdict.OK


def test_write_that_never_returned_may_never_take_effect() -> None:
    history = [op(0, 0, None, kv_set("k", "a"), UNKNOWN), op(1, 50, 51, kv_get("k"), None)]
    assert verdict(history) is Verdict.OK


def test_write_that_never_returned_cannot_be_undone() -> None:
    history = [
        op(0, 0, None, kv_set("k", "a"), UNKNOWN),
        op(1, 1, 2, kv_get("k"), "a"),
        op(1, 3, 4, kv_get("k"), None),
    ]
    assert verdict(history) is Verdict.ILLEGAL


def test_write_cannot_take_effect_before_its_call() -> None:
    history = [op(1, 0, 1, kv_get("k"), "a"), op(0, 2, None, kv_set("k", "a"), UNKNOWN)]
    assert verdict(history) is Verdict.ILLEGAL


def test_timed_out_write_may_take_effect_after_the_client_gave_up() -> None:
    # the client recorded a return at 1, but an UNKNOWN output means it does not know what happened
    timed_out = [
        op(0, 0, 1, kv_set("k", "a"), UNKNOWN),
        op(1, 2, 3, kv_get("k"), None),
        op(1, 4, 5, kv_get("k"), "a"),
    ]
    acknowledged = [op(0, 0, 1, kv_set("k", "a"), None)] + timed_out[1:]
    assert verdict(timed_out) is Verdict.OK
    assert verdict(acknowledged) is Verdict.ILLEGAL


def test_unknown_cas_may_or_may_not_have_swapped() -> None:
    base = [op(0, 0, 1, kv_set("k", "x")), op(1, 2, None, kv_cas("k", "x", "y"), UNKNOWN)]
    assert verdict(base + [op(2, 10, 11, kv_get("k"), "y")]) is Verdict.OK
    assert verdict(base + [op(2, 10, 11, kv_get("k"), "x")]) is Verdict.OK
    assert verdict(base + [op(2, 10, 11, kv_get("k"), "z")]) is Verdict.ILLEGAL


def test_unknown_delete_may_have_happened() -> None:
    base = [op(0, 0, 1, kv_set("k", "a")), op(1, 2, None, kv_delete("k"), UNKNOWN)]
    assert verdict(base + [op(2, 5, 6, kv_get("k"), None), op(2, 7, 8, kv_get("k"), None)]) is Verdict.OK
    flip_back = base + [op(2, 5, 6, kv_get("k"), None), op(2, 7, 8, kv_get("k"), "a")]
    assert verdict(flip_back) is Verdict.ILLEGAL


def test_reads_with_unknown_outcome_are_dropped() -> None:
    history = [
        op(0, 0, 1, kv_set("k", "a")),
        op(1, 2, None, kv_get("k"), UNKNOWN),
        op(1, 3, 4, kv_get("k"), UNKNOWN),
        op(2, 5, None, kv_get("k"), "nonsense"),
    ]
    result = check(history, KV)
    assert result.ok
    assert "1 operations" in result.explanation


def test_many_concurrent_unknown_writes_still_check_quickly_when_legal() -> None:
    unknown = [op(i, i, None, kv_set("k", i), UNKNOWN) for i in range(30)]
    reads = [op(100, 40 + 2 * i, 41 + 2 * i, kv_get("k"), v) for i, v in enumerate([None, 3, 3, 17, 29])]
    assert verdict(unknown + reads) is Verdict.OK
    assert verdict(unknown + reads + [op(100, 60, 61, kv_get("k"), 3)]) is Verdict.ILLEGAL


def _timed_out_writes_nobody_saw(rounds: int) -> list[Operation]:
    """Each round: a write, a read of it, a failing cas, and a set and a cas that timed out and never
    returned. A plain search would try every subset of the timed-out operations."""
    history = []
    for i in range(rounds):
        t = 10 * i
        history += [
            op(0, t, t + 2, kv_set("k", f"r{i}")),
            op(1, t + 3, t + 4, kv_get("k"), f"r{i}"),
            op(2, t + 5, t + 6, kv_cas("k", "nope", f"c{i}"), False),
            op(3 + 2 * i, t + 1, None, kv_set("k", f"u{i}"), UNKNOWN),
            op(4 + 2 * i, t + 1, None, kv_cas("k", f"r{i}", f"x{i}"), UNKNOWN),
        ]
    return history


def test_many_timed_out_writes_nobody_saw() -> None:
    history = _timed_out_writes_nobody_saw(30)
    assert verdict(history) is Verdict.OK
    # a late read may still see a timed-out write take effect...
    assert verdict(history + [op(1, 1000, 1001, kv_get("k"), "u3")]) is Verdict.OK
    assert verdict(history + [op(1, 1000, 1001, kv_get("k"), "x29")]) is Verdict.OK
    # ...but not a value overwritten long ago: the whole search space must be ruled out
    result = check(history + [op(1, 1000, 1001, kv_get("k"), "r0")], KV)
    assert result.verdict is Verdict.ILLEGAL
    assert result.failed_op.output == "r0"


# --- several keys, explanations, timeouts -----------------------------------------------------------------


def test_keys_are_checked_separately_and_the_explanation_names_the_bad_key() -> None:
    history = [
        op(0, 0, 1, kv_set("good", "1")),
        op(1, 0, 1, kv_set("bad", "1")),
        op(0, 2, 3, kv_get("good"), "1"),
        op(1, 2, 3, kv_set("bad", "2")),
        op(2, 4, 5, kv_get("bad"), "1"),
    ]
    result = check(history, KV)
    assert result.verdict is Verdict.ILLEGAL
    assert result.partition == "key 'bad'"
    assert "key 'bad'" in result.explanation
    assert "get('bad') -> '1'" in result.explanation
    assert result.failed_op == history[4]
    assert result.prefix == (history[1], history[3])
    assert result.state_after_prefix == "2"
    assert "2 of 3 operations" in result.explanation


def test_same_history_is_fine_as_separate_keys_but_not_as_one_register() -> None:
    history = [
        op(0, 0, 1, KvOp("set", "a", 1)),
        op(1, 2, 3, KvOp("set", "b", 2)),
        op(2, 4, 5, KvOp("get", "a"), 1),
    ]
    assert verdict(history, KvModel()) is Verdict.OK
    assert verdict(history, RegisterModel()) is Verdict.ILLEGAL


def test_tuple_keys_as_pegasus_uses_them() -> None:
    key = (b"hash", b"sort")
    history = [op(0, 0, 1, kv_set(key, b"v")), op(1, 2, 3, kv_get(key), b"w")]
    result = check(history, KV)
    assert result.verdict is Verdict.ILLEGAL
    assert repr(key) in result.explanation


def _exponential_history(appenders: int) -> list[Operation]:
    """Concurrent appends and then a read of a value nobody could produce: every order of the appends gives
    a different value, so the search must try them all before it can say no."""
    appends = [op(i, 0, 100, kv_append("k", chr(ord("a") + i))) for i in range(appenders)]
    return appends + [op(99, 101, 102, kv_get("k"), "never written")]


def test_a_search_that_runs_out_of_time_is_unknown() -> None:
    result = check(_exponential_history(12), KV, timeout=1e-6)
    assert result.verdict is Verdict.UNKNOWN
    assert "timed out" in result.explanation and "key 'k'" in result.explanation


def test_the_same_search_without_a_limit_finishes_illegal() -> None:
    result = check(_exponential_history(5), KV)
    assert result.verdict is Verdict.ILLEGAL
    assert result.failed_op.output == "never written"
    assert len(result.prefix) == 5


# --- malformed input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "history, message",
    [
        ([("not", "an", "op")], "not an Operation"),
        ([op(0, 5, 4, kv_get("k"), None)], "before its call"),
        ([op(0, "soon", 4, kv_get("k"), None)], "call time"),
        ([op(0, 1, math.nan, kv_get("k"), None)], "return time"),
    ],
)
def test_malformed_histories_are_rejected_clearly(history: list[Any], message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        check(history, KV)


@pytest.mark.parametrize("timeout", [0, -1.0, math.nan])
def test_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        check([op(0, 0, 1, kv_get("k"), None)], KV, timeout=timeout)


@pytest.mark.parametrize(
    "input, message",
    [
        (KvOp("incr", "k"), "history entry 0: unknown key-value operation kind 'incr'"),
        (("get", "k"), "history entry 0: input .* is not a KvOp"),
        (KvOp("set", ["list", "key"], "v"), "history entry 0: .* unhashable"),
    ],
)
def test_bad_inputs_are_rejected_clearly(input: Any, message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        check([op(0, 0, 1, input)], KV)


# --- custom models and the recorder ------------------------------------------------------------------------


class CounterModel(Model):
    """Increments return the new value; reads return the current one."""

    def init(self) -> int:
        return 0

    def step(self, state: int, input: str, output: Any) -> tuple[bool, int]:
        if input == "incr":
            return (output is UNKNOWN or output == state + 1), state + 1
        return output == state, state

    def is_read_only(self, input: str) -> bool:
        return input == "read"


def test_a_custom_model_plugs_in() -> None:
    good = [op(0, 0, 10, "incr", 2), op(1, 0, 10, "incr", 1), op(2, 11, 12, "read", 2)]
    bad = [op(0, 0, 10, "incr", 1), op(1, 0, 10, "incr", 1)]
    assert verdict(good, CounterModel()) is Verdict.OK
    assert verdict(bad, CounterModel()) is Verdict.ILLEGAL


def test_recorder_builds_a_checkable_history() -> None:
    ticks = itertools.count()
    rec = Recorder(clock=lambda: next(ticks))
    w = rec.invoke("c1", kv_set("k", "a"))
    lost = rec.invoke("c2", kv_set("k", "b"))
    timed_out = rec.invoke("c3", kv_delete("k"))
    r = rec.invoke("c4", kv_get("k"))
    rec.complete(w, None)
    rec.unknown(timed_out)
    rec.complete(r, "a")
    history = rec.history()
    assert [o.client_id for o in history] == ["c1", "c2", "c3", "c4"]
    assert history[1].return_time is None and history[1].output is UNKNOWN
    assert history[2].output is UNKNOWN and not history[2].returned
    assert history[3] == Operation("c4", 3, 5, kv_get("k"), "a")  # unknown() reads no clock
    assert check(history, KV).ok
    with pytest.raises(HistoryError, match="not open"):
        rec.complete(w, None)
    del lost


# --- brute force cross-check ------------------------------------------------------------------------------


def _brute_force_linearizable(history: list[Operation], model: Model) -> bool:
    """Tries every order that respects real time; a never-returned or unknown operation returns at infinity."""

    def ends(o: Operation) -> float:
        return o.return_time if o.returned else math.inf

    for order in itertools.permutations(history):
        if any(ends(b) < a.call_time for i, a in enumerate(order) for b in order[i + 1 :]):
            continue
        state = model.init()
        for o in order:
            ok, state = model.step(state, o.input, o.output)
            if not ok:
                break
        else:
            return True
    return False


def _random_history(rng: random.Random, size: int, p_unknown: float) -> list[Operation]:
    values = ["a", "b", None]
    history = []
    for client in range(size):
        call = rng.randint(0, 12)
        ret: float | None = call + rng.randint(0, 6)
        kind = rng.choice(["get", "get", "set", "cas", "delete", "append"])
        output: Any = None
        if kind == "get":
            inp = kv_get("k")
            output = rng.choice(["a", "b", "ab", "ba", None])
        elif kind == "set":
            inp = kv_set("k", rng.choice(["a", "b"]))
        elif kind == "append":
            inp = kv_append("k", rng.choice(["a", "b"]))
        elif kind == "delete":
            inp = kv_delete("k")
        else:
            inp = kv_cas("k", rng.choice(values), rng.choice(["a", "b"]))
            output = rng.random() < 0.5
        if kind != "get" and rng.random() < p_unknown:
            ret, output = (None if rng.random() < 0.5 else ret), UNKNOWN
        history.append(op(client, call, ret, inp, output))
    return history


@pytest.mark.parametrize("p_unknown", [0.25, 0.6])
def test_agrees_with_brute_force_on_random_small_histories(p_unknown: float) -> None:
    rng = random.Random(20240611)
    outcomes = {Verdict.OK: 0, Verdict.ILLEGAL: 0}
    for _ in range(400):
        history = _random_history(rng, rng.randint(1, 6), p_unknown)
        expected = Verdict.OK if _brute_force_linearizable(history, KV) else Verdict.ILLEGAL
        result = check(history, KV)
        assert result.verdict is expected, history
        outcomes[result.verdict] += 1
    # the generator must exercise both answers for the comparison to mean anything
    assert min(outcomes.values()) > 50, outcomes
