"""Client writes a primary holds: queued (not yet in a mutation) and waiting (in a mutation, for its apply).

A queued write has not been written anywhere, so refusing it is a definite "not written". A waiting write's
mutation may still commit under another primary after this one steps down, so its outcome is then unknown.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Hashable

from pegasus_node.errors import ErrorCode
from pegasus_node.replication.config import Gpid
from pegasus_node.replication.effects import ReplyClient


@dataclass(slots=True)
class QueuedWrite:
    request_id: Hashable
    writes: tuple
    size: int
    timestamp_us: int
    deadline: float | None


class ClientBook:
    def __init__(self, gpid: Gpid) -> None:
        self.gpid = gpid
        self.queue: deque[QueuedWrite] = deque()
        # decree -> [(request id, first op index, end op index)] of the mutation at that decree
        self.waiting: dict[int, list[tuple[Hashable, int, int]]] = {}

    def take_batch(self, max_ops: int, max_bytes: int) -> list[QueuedWrite]:
        """Queued writes for one mutation: at least one, then more while both caps allow."""
        batch: list[QueuedWrite] = []
        ops = size = 0
        while self.queue:
            head = self.queue[0]
            if batch and (ops + len(head.writes) > max_ops or size + head.size > max_bytes):
                break
            batch.append(self.queue.popleft())
            ops += len(head.writes)
            size += head.size
        return batch

    def attach(self, decree: int, batch: list[QueuedWrite]) -> None:
        spans, start = [], 0
        for write in batch:
            spans.append((write.request_id, start, start + len(write.writes)))
            start += len(write.writes)
        self.waiting[decree] = spans

    def applied(self, decree: int, results: list | tuple) -> list[ReplyClient]:
        spans = self.waiting.pop(decree, ())
        return [ReplyClient(self.gpid, rid, ErrorCode.ERR_OK, decree, tuple(results[s:e])) for rid, s, e in spans]

    def expire(self, now: float) -> list[ReplyClient]:
        expired = [w for w in self.queue if w.deadline is not None and now >= w.deadline]
        if not expired:
            return []
        self.queue = deque(w for w in self.queue if w.deadline is None or now < w.deadline)
        return [ReplyClient(self.gpid, w.request_id, ErrorCode.ERR_TIMEOUT) for w in expired]

    def step_down(self, committed: int) -> list[ReplyClient]:
        """This replica stops being primary: queued writes were not written; waiting ones beyond the commit
        point have an unknown outcome; committed ones still get their answer when applied."""
        replies = [ReplyClient(self.gpid, w.request_id, ErrorCode.ERR_INVALID_STATE) for w in self.queue]
        self.queue.clear()
        for decree in sorted(d for d in self.waiting if d > committed):
            replies.extend(ReplyClient(self.gpid, rid, ErrorCode.ERR_TIMEOUT, decree)
                           for rid, _, _ in self.waiting.pop(decree))
        return replies

    def fail_all(self) -> list[ReplyClient]:
        """The replica broke (ERROR): nothing more will be applied here, every outcome is unknown."""
        replies = [ReplyClient(self.gpid, w.request_id, ErrorCode.ERR_INVALID_STATE) for w in self.queue]
        self.queue.clear()
        for decree in sorted(self.waiting):
            replies.extend(ReplyClient(self.gpid, rid, ErrorCode.ERR_TIMEOUT, decree)
                           for rid, _, _ in self.waiting.pop(decree))
        return replies
