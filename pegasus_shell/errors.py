"""Errors a shell command can end with, each carrying the process exit code it maps to.

Scripts rely on the exit codes (documented in ``pegasus_shell/JSON_SCHEMA.md``), so every failure a user can
cause is one of these, never a bare exception with a traceback.
"""

from __future__ import annotations

import os
import traceback

from pegasus_node.client.errors import TableNotFoundError
from pegasus_node.errors import ErrorCode, PegasusError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130


class ShellError(Exception):
    """A command failed; ``code`` is a short machine-readable name, ``exit_code`` the process exit code."""

    exit_code = EXIT_FAILED
    default_code = "ERR_COMMAND_FAILED"

    def __init__(self, message: str, code: str | None = None, data: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.data = data  # what the command did produce before failing (shown, then the error)

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "exit_code": self.exit_code}


class UsageError(ShellError):
    """The command line itself is wrong: unknown command, wrong flag, missing or malformed argument."""

    exit_code = EXIT_USAGE
    default_code = "ERR_USAGE"


class UnreachableError(ShellError):
    """The cluster's meta servers cannot be reached."""

    exit_code = EXIT_UNREACHABLE
    default_code = "ERR_UNREACHABLE"


class CommandInterrupted(ShellError):
    """The user interrupted the command (Ctrl-C) or the run was asked to stop."""

    exit_code = EXIT_INTERRUPTED
    default_code = "ERR_INTERRUPTED"


class ExitShell(Exception):
    """Raised by ``exit``/``quit`` to end the REPL or a batch run."""


def _is_unreachable(exc: PegasusError) -> bool:
    if exc.code == ErrorCode.ERR_NETWORK_FAILURE:
        return True
    last = getattr(exc, "last_error", None)  # a timeout whose attempts never got a connection
    return exc.code == ErrorCode.ERR_TIMEOUT and isinstance(last, PegasusError) and (
        last.code == ErrorCode.ERR_NETWORK_FAILURE
    )


def to_shell_error(exc: BaseException) -> ShellError:
    """Any failure as a ShellError with the right exit code; never a traceback for the user."""
    if isinstance(exc, ShellError):
        return exc
    if isinstance(exc, TableNotFoundError):
        return ShellError(f'table "{exc.table_name}" does not exist ("ls" lists the tables)', exc.code.name)
    if isinstance(exc, PegasusError):
        if _is_unreachable(exc):
            return UnreachableError(exc.message, exc.code.name)
        return ShellError(exc.message, exc.code.name)
    if os.environ.get("PEGASUS_SHELL_DEBUG"):
        traceback.print_exception(exc)
    return ShellError(f"internal error: {type(exc).__name__}: {exc}", "ERR_INTERNAL")
