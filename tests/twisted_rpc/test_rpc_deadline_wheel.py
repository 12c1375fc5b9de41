from twisted.internet.task import Clock

from pegasus_node.twisted_rpc.deadline_wheel import DeadlineWheel


class Item:
    def __init__(self, clock: Clock, log: list) -> None:
        self.clock = clock
        self.log = log
        self.bucket = None

    def expire(self) -> None:
        self.bucket.pop(self, None)
        self.log.append((self, self.clock.seconds()))


def test_items_expire_not_before_their_deadline_and_within_one_tick():
    clock = Clock()
    clock.advance(100.0)
    wheel = DeadlineWheel(clock, tick=0.01)
    log: list = []
    items = [Item(clock, log) for _ in range(3)]
    deadlines = [100.004, 100.005, 100.027]
    for item, deadline in zip(items, deadlines):
        item.bucket = wheel.add(item, deadline)
    assert len(clock.getDelayedCalls()) == 2  # one timer per bucket, not per item
    clock.advance(0.004)
    assert log == []
    clock.pump([0.001] * 40)
    assert [item for item, _ in log] == items
    for (item, fired_at), deadline in zip(log, deadlines):
        assert deadline <= fired_at <= deadline + 0.01 + 1e-9
    assert len(wheel) == 0


def test_removed_items_never_expire_and_clear_cancels_timers():
    clock = Clock()
    wheel = DeadlineWheel(clock, tick=0.01)
    log: list = []
    kept, removed, cleared = Item(clock, log), Item(clock, log), Item(clock, log)
    kept.bucket = wheel.add(kept, 0.02)
    removed.bucket = wheel.add(removed, 0.02)
    removed.bucket.pop(removed)
    clock.advance(0.05)
    assert [item for item, _ in log] == [kept]
    cleared.bucket = wheel.add(cleared, 1.0)
    wheel.clear()
    assert clock.getDelayedCalls() == []
    clock.advance(2.0)
    assert [item for item, _ in log] == [kept]
