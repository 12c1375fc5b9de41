"""Result types of table operations that return more than one value."""

from __future__ import annotations

from dataclasses import dataclass

# The check types are the storage engine's (numbered as Pegasus's cas_check_type), re-exported here.
from pegasus_node.storage.operations import CheckType

__all__ = ["CheckAndSetResult", "CheckType"]


@dataclass(frozen=True)
class CheckAndSetResult:
    """What ``Table.check_and_set`` did.

    ``set_succeed``: the check passed and the value was set. ``check_value_returned``: the call asked for
    the checked value (``return_check_value=True``) and got it, in which case ``check_value_exist`` says
    whether the checked record existed and ``check_value`` is its value (None when absent).
    """

    set_succeed: bool
    check_value_returned: bool = False
    check_value_exist: bool = False
    check_value: bytes | None = None
