"""Drives a :class:`SnapshotSource` from a timer: one poll at a time, never blocking the caller.

A tick that comes while a poll is still running is skipped (and counted), so a slow cluster slows the
refresh down instead of piling requests onto it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Callable

from pegasus_shell.tui.model import Snapshot
from pegasus_shell.tui.source import SnapshotSource


class Poller:
    def __init__(self, source: SnapshotSource, deliver: Callable[[Snapshot], None],
                 selected_table: Callable[[], str | None]) -> None:
        self._source = source
        self._deliver = deliver
        self._selected_table = selected_table
        self._task: asyncio.Task | None = None
        self.polls_started = 0
        self.ticks_skipped = 0
        self.last_failure: str | None = None
        self._last: Snapshot | None = None

    @property
    def in_flight(self) -> bool:
        return self._task is not None and not self._task.done()

    def tick(self) -> None:
        """Start a poll unless one is running. Returns at once; the snapshot is delivered when ready."""
        if self.in_flight:
            self.ticks_skipped += 1
            return
        self.polls_started += 1
        self._task = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        try:
            snapshot = await self._source.poll(self._selected_table())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a source bug must not stop the refresh; the next tick tries again
            self.last_failure = f"{type(exc).__name__}: {exc}"
            error = f"monitor: polling failed: {self.last_failure}"
            if self._last is None:
                snapshot = Snapshot(taken_at=time.time(), refresh=self.polls_started, meta_address="", error=error)
            else:  # keep showing what we had, saying that it is stale
                snapshot = replace(self._last, error=error, stale_since=self._last.stale_since or self._last.taken_at)
            self._deliver(snapshot)
            return
        self.last_failure = None
        self._last = snapshot
        self._deliver(snapshot)

    async def stop(self) -> None:
        if self.in_flight:
            assert self._task is not None
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
