"""RateLimitedLog: one line per key per interval, and the count of what it left out."""

from twisted.logger import Logger

from pegasus_node.twisted_rpc import RateLimitedLog

from .rpc_test_support import LogCapture


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_key_per_interval_then_the_count_left_out():
    clock = FakeClock()
    limited = RateLimitedLog(Logger(namespace="test.log_limit"), interval=10.0, clock=clock)
    with LogCapture() as log:
        assert limited.warn("a", "bad {what}", what=1)
        assert not limited.warn("a", "bad {what}", what=2)
        assert not limited.warn("a", "bad {what}", what=3)
        assert limited.warn("b", "other {what}", what=4)  # another key is not held back
        clock.now += 10.0
        assert limited.warn("a", "bad {what}", what=5)
        clock.now += 10.0
        assert limited.warn("a", "bad {what}", what=6)
    lines = [(e["what"], e.get("log_left_out")) for e in log.events if e.get("log_namespace") == "test.log_limit"]
    assert lines == [(1, None), (4, None), (5, 2), (6, None)]


def test_failure_captures_the_exception_being_handled_only_when_written():
    clock = FakeClock()
    limited = RateLimitedLog(Logger(namespace="test.log_limit"), clock=clock)
    with LogCapture() as log:
        for _ in range(3):
            try:
                raise KeyError("boom")
            except KeyError:
                limited.failure("k", "handler failed")
    assert [f.type for f in log.failures()] == [KeyError]
