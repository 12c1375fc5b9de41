"""Install Twisted's asyncio reactor on an explicit event loop, before anything imports the reactor.

Twisted, prompt-toolkit (``prompt_async``) and Textual (``run_async``) then share one loop. Every entry
point calls :func:`install_reactor` first thing.
"""

from __future__ import annotations

import asyncio
import sys


def install_reactor() -> asyncio.AbstractEventLoop:
    """Install the asyncio reactor (idempotent) and return its loop."""
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        loop = getattr(reactor, "_asyncioEventloop", None)
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
