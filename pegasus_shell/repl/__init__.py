"""The interactive REPL over the command registry."""

from pegasus_shell.repl.session import history_path, open_history, run_repl

__all__ = ["history_path", "open_history", "run_repl"]
