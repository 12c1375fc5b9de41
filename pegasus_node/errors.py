"""Typed error codes shared by the RPC layer, the servers and the client.

The names follow Pegasus (rDSN's ``ERR_*``) so that operators recognise them. The numbers are ours and are
part of the wire contract: never renumber an existing code.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    ERR_OK = 0
    ERR_UNKNOWN = 1
    ERR_INVALID_STATE = 2  # the replica is not (or no longer) the primary, or the node is not the leader
    ERR_OBJECT_NOT_FOUND = 3  # the partition is not hosted here, or a named object does not exist
    ERR_TIMEOUT = 4
    ERR_INVALID_PARAMETERS = 5  # the body has the wrong shape or a value is out of range
    ERR_BUSY = 6
    ERR_HANDLER_NOT_FOUND = 7  # unknown RPC method
    ERR_INVALID_DATA = 8  # a frame that cannot be decoded
    ERR_NETWORK_FAILURE = 9  # could not connect, or the connection was lost before the reply
    ERR_APP_EXIST = 10
    ERR_APP_NOT_EXIST = 11
    ERR_NOT_ENOUGH_MEMBER = 12  # too few live replica servers for the request
    ERR_DISK_IO = 13  # a write or fsync failed (a full disk, for example)
    ERR_TRY_AGAIN = 14  # e.g. check_and_set whose check did not pass
    ERR_VALUE_TOO_LARGE = 15
    ERR_INCONSISTENT_STATE = 16
    ERR_STALE_BALLOT = 17  # a replication message carries an older ballot than ours
    ERR_SHUTTING_DOWN = 18
    ERR_DUP_EXIST = 19  # the table already duplicates to that cluster


class PegasusError(Exception):
    """An error with a typed code. Raised by handlers, carried over the wire, re-raised by clients."""

    def __init__(self, code: ErrorCode | int, message: str = "") -> None:
        try:
            code = ErrorCode(code)
        except ValueError:
            code = ErrorCode.ERR_UNKNOWN
        self.code: ErrorCode = code
        self.message = message or code.name
        super().__init__(f"{code.name}: {self.message}" if message else code.name)

    def to_dict(self) -> dict:
        return {"code": self.code.name, "message": self.message}


def invalid_parameters(message: str) -> PegasusError:
    return PegasusError(ErrorCode.ERR_INVALID_PARAMETERS, message)
