"""Connectables: an endpoint as a value, ``await endpoint.connect()`` for a stream.

``TCPConnectable(host, port)`` is AnyIO's: its ``connect()`` is ``connect_tcp(host,
port)``, with a failure reported as ``ConnectionFailed`` (an OSError, so existing
``except OSError`` still catches it) naming the endpoint.  UNIX and TLS
connectables come from AnyIO through the bridge.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .abc import ByteStreamConnectable

if TYPE_CHECKING:
    from .tcp import SocketStream

__all__ = ("ConnectionFailed", "TCPConnectable")


class ConnectionFailed(OSError):
    """A connectable's ``connect()`` failed; the OSError that caused it is ``__cause__``."""


@dataclass
class TCPConnectable(ByteStreamConnectable):
    """The TCP endpoint ``host``:``port``; ``connect()`` opens a SocketStream to it."""

    host: str | ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise TypeError(f"port must be an int, not {type(self.port).__name__}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"TCP port number out of range (1-65535): {self.port}")

    async def connect(self) -> SocketStream:
        """Connect with ``connect_tcp()``; ConnectionFailed if that raises OSError."""
        from .tcp import connect_tcp  # (socket machinery only when used)

        try:
            return await connect_tcp(self.host, self.port)
        except OSError as exc:
            raise ConnectionFailed(
                f"error connecting to {self.host}:{self.port}: {exc}") from exc
