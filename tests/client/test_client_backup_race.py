"""race_with_backup on a manual clock: who is sent when, who wins, and who gets cancelled."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock

from pegasus_node.client.backup_request import race_with_backup
from pegasus_node.twisted_rpc.deadline_wheel import DeadlineWheel
from pegasus_node.errors import ErrorCode, PegasusError


class Requests:
    """Hands out real Deferreds and remembers them, so the test can answer or inspect each one."""

    def __init__(self, backup_available: bool = True) -> None:
        self.first: Deferred | None = None
        self.backup: Deferred | None = None
        self.backup_available = backup_available
        self.cancelled: list[str] = []

    def send_first(self) -> Deferred:
        self.first = Deferred(lambda _: self.cancelled.append("first"))
        return self.first

    def send_backup(self) -> Deferred | None:
        if not self.backup_available:
            return None
        self.backup = Deferred(lambda _: self.cancelled.append("backup"))
        return self.backup


def _outcome(d: Deferred) -> list:
    seen: list = []
    d.addCallbacks(lambda v: seen.append(("ok", v)), lambda f: seen.append(("fail", f.value)))
    return seen


def test_fast_primary_sends_no_backup() -> None:
    clock, req = Clock(), Requests()
    seen = _outcome(race_with_backup(clock, req.send_first, req.send_backup, 0.05))
    clock.advance(0.01)
    req.first.callback("primary")
    clock.advance(1)
    assert seen == [("ok", "primary")] and req.backup is None and not clock.getDelayedCalls()


def test_slow_primary_loses_to_backup_and_is_cancelled() -> None:
    clock, req = Clock(), Requests()
    seen = _outcome(race_with_backup(clock, req.send_first, req.send_backup, 0.05))
    clock.advance(0.049)
    assert req.backup is None
    clock.advance(0.002)
    assert req.backup is not None
    req.backup.callback("secondary")
    assert seen == [("ok", "secondary")]
    assert req.cancelled == ["first"]


def test_primary_can_still_win_after_the_backup_was_sent() -> None:
    clock, req = Clock(), Requests()
    seen = _outcome(race_with_backup(clock, req.send_first, req.send_backup, 0.05))
    clock.advance(0.1)
    req.first.callback("primary")
    assert seen == [("ok", "primary")]
    assert req.cancelled == ["backup"]


def test_one_failure_waits_for_the_other() -> None:
    clock, req = Clock(), Requests()
    seen = _outcome(race_with_backup(clock, req.send_first, req.send_backup, 0.05))
    clock.advance(0.1)
    req.backup.errback(PegasusError(ErrorCode.ERR_INVALID_STATE, "secondary refuses"))
    assert seen == []
    req.first.callback("primary")
    assert seen == [("ok", "primary")]


def test_both_failing_reports_the_primarys_failure() -> None:
    clock, req = Clock(), Requests()
    seen = _outcome(race_with_backup(clock, req.send_first, req.send_backup, 0.05))
    clock.advance(0.1)
    req.first.errback(PegasusError(ErrorCode.ERR_BUSY, "primary busy"))
    assert seen == []
    req.backup.errback(PegasusError(ErrorCode.ERR_TIMEOUT, "secondary slow"))
    assert len(seen) == 1 and seen[0][1].code == ErrorCode.ERR_BUSY


def test_primary_failing_before_the_delay_fails_at_once_without_backup() -> None:
    clock, req = Clock(), Requests()
    seen = _outcome(race_with_backup(clock, req.send_first, req.send_backup, 0.05))
    req.first.errback(PegasusError(ErrorCode.ERR_INVALID_STATE, "not primary"))
    assert seen[0][1].code == ErrorCode.ERR_INVALID_STATE
    clock.advance(1)
    assert req.backup is None and not clock.getDelayedCalls()


def test_no_secondary_means_waiting_for_the_primary() -> None:
    clock, req = Clock(), Requests(backup_available=False)
    seen = _outcome(race_with_backup(clock, req.send_first, req.send_backup, 0.05))
    clock.advance(0.1)
    assert seen == []
    req.first.callback("primary")
    assert seen == [("ok", "primary")]


def test_cancelling_the_race_cancels_everything_in_flight() -> None:
    clock, req = Clock(), Requests()
    race = race_with_backup(clock, req.send_first, req.send_backup, 0.05)
    clock.advance(0.1)
    race.cancel()
    failures: list = []
    race.addErrback(lambda f: failures.append(f.type))
    assert failures == [CancelledError]
    assert sorted(req.cancelled) == ["backup", "first"]
    assert not clock.getDelayedCalls()


def test_cancelling_before_the_delay_stops_the_timer() -> None:
    clock, req = Clock(), Requests()
    race = race_with_backup(clock, req.send_first, req.send_backup, 0.05)
    race.cancel()
    race.addErrback(lambda f: f.trap(CancelledError))
    assert req.cancelled == ["first"] and not clock.getDelayedCalls()


def test_on_a_deadline_wheel_the_backup_goes_at_most_one_tick_late_and_a_fast_primary_leaves_none() -> None:
    clock, req = Clock(), Requests()
    timers = DeadlineWheel(clock, tick=0.01)
    seen = _outcome(race_with_backup(clock, req.send_first, req.send_backup, 0.05, timers))
    clock.advance(0.049)
    assert req.backup is None
    clock.advance(0.012)
    assert req.backup is not None
    req.backup.callback("from the secondary")
    assert seen == [("ok", "from the secondary")] and req.cancelled == ["first"]

    clock, req = Clock(), Requests()
    timers = DeadlineWheel(clock, tick=0.01)
    seen = _outcome(race_with_backup(clock, req.send_first, req.send_backup, 0.05, timers))
    req.first.callback("from the primary")
    assert seen == [("ok", "from the primary")] and len(timers) == 0
    clock.advance(1.0)
    assert req.backup is None
