"""The hook through which tests inject message faults into the RPC layer.

``RpcClientPool`` and ``RpcServer`` take an optional ``fail_points`` object. When it is None (production)
the cost is one ``is not None`` check per message. When set, it is asked before each message leaves::

    action = fail_points.before_send(kind, address, method)

- ``kind``: ``"request"`` (a client pool about to send a request or a notify to ``address``, the server's
  ``"host:port"``), ``"reply"`` (a server about to send a reply to ``address``, the connection's remote
  ``"host:port"``, which for a client is its ephemeral port) or ``"notify"`` (a server about to run the
  handler of a notify that arrived from ``address``: there is no reply to hold back, so the handler is).
- ``method``: the RPC method name.

It returns one of:

- ``None``: send normally;
- ``DROP`` (``"drop"``): the message is lost. A dropped request is never sent: its call fails with
  ``ERR_TIMEOUT`` at its deadline, as a real lost message would. A dropped reply is never sent, although the
  handler ran. A dropped notify is never sent (``"request"``) or never handled (``"notify"``);
- ``delay(seconds)`` (``("delay", seconds)``): the message is sent ``seconds`` later (a request only if its
  call has not timed out or been cancelled meanwhile); a notify's handler runs ``seconds`` later, unless its
  connection has closed by then.

Anything else is a bug in the fail-point object and raises ``ValueError`` (a request's call then fails
with ``ERR_UNKNOWN`` naming it; a notify is dropped and the error logged).
"""

from __future__ import annotations

from typing import Any, Final, Protocol

DROP: Final = "drop"
DELAY: Final = "delay"

FailAction = str | tuple[str, float]


class FailPoints(Protocol):
    def before_send(self, kind: str, address: str, method: str) -> FailAction | None: ...


def delay(seconds: float) -> tuple[str, float]:
    return (DELAY, float(seconds))


def delay_seconds(action: Any) -> float | None:
    """Interpret a non-None action: None for DROP, the delay in seconds for ``delay(s)``."""
    if action == DROP:
        return None
    if (
        isinstance(action, tuple)
        and len(action) == 2
        and action[0] == DELAY
        and isinstance(action[1], (int, float))
        and action[1] >= 0
    ):
        return float(action[1])
    raise ValueError(f"fail point returned an unknown action: {action!r}")
