"""Named fault injection in every node, in the spirit of TiKV's fail-rs and Pegasus's fail_point.

A fail point is a name and an action. Names:

- ``send_to:HOST:PORT``: every RPC request and notify this node sends to that peer (``send_to:*`` for all
  peers);
- ``handler:METHOD``: the reply of every request this node handles for that RPC method (stalls a handler),
  and every notify of that method it receives (a dropped notify is not handled, a delayed one later);
- ``wal.fsync``: every WAL write + fsync of every replica on this node.

Actions: ``off``, ``drop`` (a message is lost; for ``wal.fsync``, the write fails as with a full disk),
``delay(MS)`` and ``error`` (a synonym of drop that reads better for ``wal.fsync``), each optionally with a
probability prefix, ``25%drop``. Fail points are set from the ini file (``[core] fail_points =
name=action;name=action``), over RPC (``remote-command fail-point set NAME ACTION``) and over HTTP
(``GET /failpoints``, ``/failpoints?set=NAME&action=ACTION``, ``/failpoints?clear=NAME|all``). With none set,
the cost on the message path is one truth test.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc import DROP, delay

_ACTION = re.compile(r"^(?:(?P<pct>\d+(?:\.\d+)?)%)?(?P<kind>off|drop|error|delay\((?P<ms>\d+(?:\.\d+)?)\))$")
_NAME = re.compile(r"^(send_to:(\*|[^\s:]+:\d+)|handler:[\w.]+|wal\.fsync)$")


class FailPointError(PegasusError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ERR_INVALID_PARAMETERS, message)


@dataclass(frozen=True)
class FailAction:
    text: str
    kind: str  # "drop" or "delay"
    delay_seconds: float
    probability: float

    @classmethod
    def parse(cls, text: str) -> "FailAction | None":
        match = _ACTION.match(text.strip())
        if match is None:
            raise FailPointError(f"unknown fail-point action {text!r}: use off, drop, error or delay(MS), "
                                 "optionally with a probability prefix such as 25%drop")
        kind = match["kind"]
        if kind == "off":
            return None
        probability = float(match["pct"]) / 100 if match["pct"] else 1.0
        if not 0 < probability <= 1:
            raise FailPointError(f"fail-point probability must be in (0%, 100%], got {match['pct']}%")
        if kind.startswith("delay"):
            return cls(text.strip(), "delay", float(match["ms"]) / 1000, probability)
        return cls(text.strip(), "drop", 0.0, probability)


class FailPointRegistry:
    def __init__(self, spec: str = "", rng: random.Random | None = None) -> None:
        self._points: dict[str, FailAction] = {}
        self._rng = rng or random.Random()
        self._lock = threading.Lock()  # wal.fsync is evaluated in worker threads
        for item in filter(None, (part.strip() for part in spec.split(";"))):
            name, _, action = item.partition("=")
            self.set(name.strip(), action.strip())

    # ----- management -----

    def set(self, name: str, action_text: str) -> None:
        if not _NAME.match(name):
            raise FailPointError(f"unknown fail point {name!r}: use send_to:HOST:PORT, send_to:*, "
                                 "handler:METHOD or wal.fsync")
        action = FailAction.parse(action_text)
        with self._lock:
            if action is None:
                self._points.pop(name, None)
            else:
                self._points[name] = action

    def clear(self, name: str = "all") -> None:
        with self._lock:
            if name == "all":
                self._points.clear()
            else:
                self._points.pop(name, None)

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return {name: action.text for name, action in sorted(self._points.items())}

    # ----- evaluation -----

    def _fires(self, name: str) -> FailAction | None:
        action = self._points.get(name)
        if action is None or (action.probability < 1.0 and self._rng.random() >= action.probability):
            return None
        return action

    def before_send(self, kind: str, address: str, method: str):
        """The RPC layer's hook (see pegasus_node/twisted_rpc/fail_points.py)."""
        if not self._points:
            return None
        if kind == "request":
            action = self._fires(f"send_to:{address}") or self._fires("send_to:*")
        else:  # "reply" or "notify": this node handling a message
            action = self._fires(f"handler:{method}")
        if action is None:
            return None
        return DROP if action.kind == "drop" else delay(action.delay_seconds)

    def before_wal_write(self) -> None:
        """Called in the WAL writer thread: may sleep (a slow disk) or raise (a failed write)."""
        if not self._points:
            return
        action = self._fires("wal.fsync")
        if action is None:
            return
        if action.kind == "delay":
            time.sleep(action.delay_seconds)
            return
        raise PegasusError(ErrorCode.ERR_DISK_IO, "injected WAL write failure (fail point wal.fsync)")

    # ----- operator interfaces -----

    def remote_command(self, args: list[str]) -> dict:
        usage = "usage: fail-point list | set NAME ACTION | clear [NAME|all]"
        if not args or args[0] == "list":
            return self.snapshot()
        if args[0] == "set" and len(args) == 3:
            self.set(args[1], args[2])
            return self.snapshot()
        if args[0] == "clear" and len(args) <= 2:
            self.clear(args[1] if len(args) == 2 else "all")
            return self.snapshot()
        raise FailPointError(usage)

    def http(self, args: dict) -> dict:
        def first(key: str) -> str | None:
            value = args.get(key)
            if isinstance(value, list):
                value = value[0] if value else None
            return value.decode() if isinstance(value, bytes) else value

        if first("set") is not None:
            self.set(first("set"), first("action") or "off")
        elif first("clear") is not None:
            self.clear(first("clear"))
        return {"fail_points": self.snapshot()}
