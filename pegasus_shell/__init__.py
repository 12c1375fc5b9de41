"""pegasus-py admin shell: command registry, REPL, batch and one-shot runners, live monitor."""

from pegasus_node import __version__

__all__ = ["__version__"]
