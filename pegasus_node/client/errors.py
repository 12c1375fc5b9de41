"""The client's exceptions. Every one is a :class:`PegasusError`, so callers can catch one base class.

- :class:`PegasusClientError` and its subclasses: the caller's arguments were rejected before any I/O
  (code ``ERR_INVALID_PARAMETERS``).
- :class:`TableNotFoundError`: the meta server does not know the table (``ERR_APP_NOT_EXIST``).
- :class:`PegasusTimeoutError`: the operation's deadline passed before it succeeded (``ERR_TIMEOUT``).
- :class:`AmbiguousResultError`: a non-idempotent write (``incr``, ``check_and_set``) failed in a way that
  leaves it unknown whether it was applied; it is never retried blindly. Its code is the underlying one.
- :class:`ClientClosedError`: the client was closed (``ERR_INVALID_STATE``).
"""

from __future__ import annotations

from pegasus_node.errors import ErrorCode, PegasusError


class PegasusClientError(PegasusError):
    """An argument was rejected by the client before anything was sent."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ERR_INVALID_PARAMETERS, message)


class InvalidKeyError(PegasusClientError):
    """A hash key or sort key of the wrong type, an empty hash key, or a hash key over 65535 bytes."""


class InvalidValueError(PegasusClientError):
    """A value that is neither bytes nor str."""


class ValueTooLargeError(PegasusClientError):
    """A value larger than the client's ``max_value_bytes``."""


class InvalidTtlError(PegasusClientError):
    """A TTL that is not a non-negative integer number of seconds."""


class InvalidArgumentError(PegasusClientError):
    """Any other argument of the wrong type or out of range."""


class ReactorThreadError(PegasusClientError):
    """A blocking call made from the reactor thread, where it would wait for itself forever."""


class TableNotFoundError(PegasusError):
    def __init__(self, table_name: str, detail: str = "") -> None:
        self.table_name = table_name
        message = f"table {table_name!r} does not exist"
        if detail.startswith(message):  # the server already said it, perhaps with a hint
            message = detail
        elif detail:
            message = f"{message} ({detail})"
        super().__init__(ErrorCode.ERR_APP_NOT_EXIST, message)


class PegasusTimeoutError(PegasusError):
    """The deadline passed. ``last_error`` is the failure of the last attempt, if there was one."""

    def __init__(self, message: str, last_error: BaseException | None = None) -> None:
        self.last_error = last_error
        if last_error is not None:
            message = f"{message}; last error: {last_error}"
        super().__init__(ErrorCode.ERR_TIMEOUT, message)


class AmbiguousResultError(PegasusError):
    """A non-idempotent write may or may not have been applied; ``cause`` is the failure seen."""

    def __init__(self, operation: str, cause: PegasusError) -> None:
        self.cause = cause
        super().__init__(
            cause.code,
            f"{operation} may or may not have been applied (not retried, it is not idempotent): {cause}",
        )


class ClientClosedError(PegasusError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.ERR_INVALID_STATE, "the client is closed")
