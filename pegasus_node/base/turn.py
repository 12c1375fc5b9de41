"""Cheap "later in this turn" scheduling for the hot paths of a node.

The replica server defers three things to the end of each reactor turn: folding the turn's client writes into
one mutation, handing the turn's log batches to the log thread, and sending each peer one frame. Twisted's
``callLater(0)`` costs a DelayedCall, a heap push and, on the asyncio reactor, cancelling and re-arming the
loop's timer, then a heap pop when it fires; its ``callFromThread`` goes through ``callLater(0)`` as well. At
thousands of writes a second that was several percent of a replica server's CPU. On the asyncio reactor we
queue a plain asyncio callback instead (``call_soon``); under any other reactor (tests with ``task.Clock``)
we fall back to ``callLater(0)``, which runs at the same point in the turn.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.logger import Logger

from pegasus_node.base.reactor import asyncio_loop_of

log = Logger()


def _guarded(fn: Callable, args: tuple) -> None:
    try:
        fn(*args)
    except Exception:
        # As Twisted does for a failing DelayedCall: log it, keep the reactor running.
        log.failure("callback {fn!r} failed", fn=fn)


def call_soon(reactor: Any, fn: Callable, *args: Any) -> None:
    """Run ``fn(*args)`` on the reactor thread once what the reactor is doing now is done."""
    loop = asyncio_loop_of(reactor)
    if loop is None:
        reactor.callLater(0, fn, *args)
    else:
        loop.call_soon(_guarded, fn, args)


def call_from_thread(reactor: Any, fn: Callable, *args: Any) -> None:
    """From another thread: run ``fn(*args)`` on the reactor thread."""
    loop = asyncio_loop_of(reactor)
    if loop is None:
        reactor.callFromThread(fn, *args)
    else:
        loop.call_soon_threadsafe(_guarded, fn, args)
