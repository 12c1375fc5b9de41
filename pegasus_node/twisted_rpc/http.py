"""HTTP resources served on the RPC port: a path router, JSON endpoints and Prometheus ``/metrics``.

The HTTP protocol itself is twisted.web's; this module only builds the resource tree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import CoroutineType
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from pegasus_node.errors import ErrorCode, PegasusError

JsonFunction = Callable[[dict[str, list[str]]], Any]

_log = Logger()

_STATUS_OF_CODE = {
    ErrorCode.ERR_INVALID_PARAMETERS: 400,
    ErrorCode.ERR_OBJECT_NOT_FOUND: 404,
    ErrorCode.ERR_APP_NOT_EXIST: 404,
    ErrorCode.ERR_HANDLER_NOT_FOUND: 404,
    ErrorCode.ERR_APP_EXIST: 409,
    ErrorCode.ERR_BUSY: 503,
    ErrorCode.ERR_INVALID_STATE: 503,
    ErrorCode.ERR_SHUTTING_DOWN: 503,
    ErrorCode.ERR_TIMEOUT: 504,
}


class Directory(Resource):
    """A resource whose unknown children are a plain 404 page (twisted.web's default one is deprecated)."""

    def getChild(self, path: bytes, request: Request) -> IResource:
        return notFound()


def path_segments(path: bytes | str) -> list[bytes]:
    """``"/meta/app"`` -> ``[b"meta", b"app"]``; the root path is not a valid endpoint."""
    if isinstance(path, str):
        path = path.encode("utf-8")
    segments = [s for s in path.split(b"/") if s]
    if not segments:
        raise ValueError(f"HTTP path {path!r} names no resource")
    return segments


def add_resource(root: Resource, path: bytes | str, resource: IResource) -> None:
    """Mount ``resource`` at ``path`` under ``root``, creating intermediate directories."""
    *parents, leaf = path_segments(path)
    node = root
    for segment in parents:
        child = node.children.get(segment)
        if child is None:
            child = Directory()
            node.putChild(segment, child)
        node = child
    node.putChild(leaf, resource)


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _decode_args(args: dict[bytes, list[bytes]]) -> dict[str, list[str]]:
    return {
        key.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in values]
        for key, values in args.items()
    }


class JsonResource(Directory):
    """Answers GET/POST with ``fn(args)`` as JSON. ``args`` is the query (and form) arguments in
    ``urllib.parse.parse_qs`` shape: ``{"name": ["value", ...]}``. ``fn`` may return a Deferred or a coroutine.

    A PegasusError becomes a JSON ``{"error": code name, "message": ...}`` with a matching HTTP status; any
    other exception is logged with its traceback and answered 500 without details. The path must match
    exactly: deeper paths are 404.
    """

    def __init__(self, fn: JsonFunction) -> None:
        super().__init__()
        self._fn = fn

    def render_GET(self, request: Request) -> Any:
        return self._render(request)

    render_POST = render_GET

    def _render(self, request: Request) -> Any:
        # notifyFinish fires (or fails) once the response is written or the client has gone away.
        gone: list = []
        request.notifyFinish().addBoth(gone.append)
        d = maybeDeferred(self._fn, _decode_args(request.args or {}))
        d.addCallback(self._resolve_coroutine)
        d.addCallbacks(self._success, self._failure, callbackArgs=(request,), errbackArgs=(request,))
        d.addCallback(self._write, request, gone)
        d.addErrback(lambda f: _log.failure("HTTP {path}: writing the response failed", failure=f, path=request.path))
        return NOT_DONE_YET

    @staticmethod
    def _resolve_coroutine(result: Any) -> Any:
        if isinstance(result, CoroutineType):
            return Deferred.fromCoroutine(result)
        return result

    @staticmethod
    def _success(result: Any, request: Request) -> bytes:
        try:
            return json.dumps(result, default=_json_default).encode("utf-8")
        except (TypeError, ValueError) as exc:
            _log.error("HTTP {path} returned a value that is not JSON: {exc}", path=request.path, exc=exc)
            request.setResponseCode(500)
            return json.dumps({"error": ErrorCode.ERR_UNKNOWN.name, "message": "internal error"}).encode()

    @staticmethod
    def _failure(failure: Failure, request: Request) -> bytes:
        exc = failure.value
        if isinstance(exc, PegasusError):
            request.setResponseCode(_STATUS_OF_CODE.get(exc.code, 500))
            return json.dumps({"error": exc.code.name, "message": exc.message}).encode("utf-8")
        _log.failure("HTTP {path} failed", failure=failure, path=request.path)
        request.setResponseCode(500)
        return json.dumps({"error": ErrorCode.ERR_UNKNOWN.name, "message": "internal error"}).encode("utf-8")

    @staticmethod
    def _write(payload: bytes, request: Request, gone: list) -> None:
        if gone:  # the client went away meanwhile
            return
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-length", b"%d" % len(payload))
        request.write(payload)
        request.finish()


class MetricsResource(Directory):
    """Prometheus text exposition of the process's default registry."""

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(REGISTRY)
