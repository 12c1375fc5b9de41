"""The pegasus-py client library, in the style of the Pegasus Java client.

- :class:`Client` (Twisted, every operation returns a Deferred) and :class:`Table`, from ``open_table``;
- :class:`BlockingClient`, a blocking facade for scripts;
- :class:`MetaAdmin`, cluster administration (tables, nodes, meta level, a node's status and commands);
- the exceptions (all :class:`~pegasus_node.errors.PegasusError`), :class:`CheckType`, :class:`CheckAndSetResult`.

Import the reactor-free parts freely; :class:`Client` uses the running Twisted reactor (install it first
with ``pegasus_node.base.reactor.install_reactor``), :class:`BlockingClient` starts one itself.
"""

from pegasus_node.client.admin import MetaAdmin
from pegasus_node.client.blocking import BlockingAdmin, BlockingClient, BlockingScanner, BlockingTable
from pegasus_node.client.client import Client
from pegasus_node.client.errors import (
    AmbiguousResultError,
    ClientClosedError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidTtlError,
    InvalidValueError,
    PegasusClientError,
    PegasusTimeoutError,
    ReactorThreadError,
    TableNotFoundError,
    ValueTooLargeError,
)
from pegasus_node.client.results import CheckAndSetResult, CheckType
from pegasus_node.client.scanner import Scanner
from pegasus_node.client.table import Table
from pegasus_node.errors import ErrorCode, PegasusError

__all__ = [
    "AmbiguousResultError",
    "BlockingAdmin",
    "BlockingClient",
    "BlockingScanner",
    "BlockingTable",
    "CheckAndSetResult",
    "CheckType",
    "Client",
    "ClientClosedError",
    "ErrorCode",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidTtlError",
    "InvalidValueError",
    "MetaAdmin",
    "PegasusClientError",
    "PegasusError",
    "PegasusTimeoutError",
    "ReactorThreadError",
    "Scanner",
    "Table",
    "TableNotFoundError",
    "ValueTooLargeError",
]
