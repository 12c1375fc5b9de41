"""Fixtures for the monitor tests: a pinned time zone, and the glue to run Textual under pytest's asyncio
reactor."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Clock times in the views are local; pin the zone so that screens are the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@contextlib.contextmanager
def _outside_reactor_loop():
    """Every test body runs inside the reactor's loop (pytest-twisted calls it from there), and asyncio.run
    refuses to start a loop inside a running one: hide the reactor's loop meanwhile."""
    from twisted.internet import reactor

    running = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    try:
        yield
    finally:
        asyncio.events._set_running_loop(running)
        asyncio.set_event_loop(reactor._asyncioEventloop)


@pytest.fixture
def snap(snap_compare):
    """snap_compare, which runs the app with ``asyncio.run`` on a loop of its own."""

    def compare(*args, **kwargs) -> bool:
        with _outside_reactor_loop():
            return snap_compare(*args, **kwargs)

    return compare
