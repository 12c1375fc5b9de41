"""Install Twisted's asyncio reactor on an explicit event loop, before anything imports the reactor.

Twisted, prompt-toolkit (``prompt_async``) and Textual (``run_async``) then share one loop. Every entry
point calls :func:`install_reactor` first thing.
"""

from __future__ import annotations

import asyncio
import sys


def asyncio_loop_of(reactor) -> asyncio.AbstractEventLoop | None:
    """The asyncio loop under Twisted's asyncio reactor (it keeps it in ``_asyncioEventloop``); None for any
    other reactor (``task.Clock`` in tests)."""
    return getattr(reactor, "_asyncioEventloop", None)


def install_reactor() -> asyncio.AbstractEventLoop:
    """Install the asyncio reactor (idempotent) and return its loop."""
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        loop = asyncio_loop_of(reactor)
        if loop is None:
            raise RuntimeError(
                f"a non-asyncio Twisted reactor ({type(reactor).__name__}) was installed before ours"
            )
        return loop
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)
    return loop
