"""Coroutine methods exposed as Deferred-returning methods."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred

P = ParamSpec("P")
T = TypeVar("T")


def returns_deferred(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Deferred]:
    """Start the coroutine at once and return its Deferred.

    The coroutine runs synchronously up to its first wait, so argument checks at its top fail the returned
    Deferred before anything is sent; callers see every error the same way, through the Deferred.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Deferred:
        return ensureDeferred(fn(*args, **kwargs))

    return wrapper
