"""The per-attempt timeout inside an operation's deadline (pegasus_node.client.retry)."""

from __future__ import annotations

from twisted.internet.task import Clock

from pegasus_node.client.retry import Deadline, attempt_timeout_seconds


def test_an_idempotent_attempt_gets_half_the_timeout_but_at_least_a_second() -> None:
    clock = Clock()
    five = Deadline(clock, 5.0)
    assert attempt_timeout_seconds(five, five.remaining(), True) == 2.5
    assert attempt_timeout_seconds(five, 2.0, True) == 2.0  # never past the deadline
    short = Deadline(clock, 1.5)
    assert attempt_timeout_seconds(short, short.remaining(), True) == 1.0
    assert attempt_timeout_seconds(short, 0.5, True) == 0.5


def test_a_non_idempotent_attempt_gets_all_that_remains() -> None:
    clock = Clock()
    five = Deadline(clock, 5.0)
    clock.advance(1.0)
    assert attempt_timeout_seconds(five, five.remaining(), False) == 4.0


def test_an_attempt_gets_at_least_a_millisecond() -> None:
    clock = Clock()
    deadline = Deadline(clock, 0.5)
    clock.advance(0.6)
    assert deadline.expired()
    for idempotent in (True, False):
        assert attempt_timeout_seconds(deadline, deadline.remaining(), idempotent) == 0.001
        assert attempt_timeout_seconds(deadline, 0.0005, idempotent) == 0.001
