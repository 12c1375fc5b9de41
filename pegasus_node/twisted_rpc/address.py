"""Node addresses are ``"host:port"`` strings (``"[::1]:34601"`` for IPv6)."""

from __future__ import annotations

from twisted.internet.interfaces import IAddress

from pegasus_node.errors import invalid_parameters


def parse_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"`` into ``(host, port)``; ERR_INVALID_PARAMETERS if it is not one."""
    if not isinstance(address, str):
        raise invalid_parameters(f"address must be a 'host:port' string, not {type(address).__name__}")
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise invalid_parameters(f"address {address!r} is not 'host:port'")
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def address_of(addr: IAddress) -> str:
    """``"host:port"`` of a Twisted IPv4Address/IPv6Address (or its repr for anything else)."""
    host = getattr(addr, "host", None)
    port = getattr(addr, "port", None)
    if host is None or port is None:
        return str(addr)
    return format_address(host, port)
