"""Host name resolution (AnyIO's ``getaddrinfo``/``getnameinfo``).

Thin over the loop's own resolver (a thread in the stdlib loop, libuv's in uvloop)
with AnyIO's two conveniences: internationalised host names are encoded per IDNA
2008 (UTS #46), and IPv6 socket addresses come back as ``(host, port)`` pairs, the
scope id in the host (``fe80::1%2``), like every other address scopeloop reports.

IDNA 2008 needs the ``idna`` package (a dependency of AnyIO, so usually present);
without it the standard library's IDNA 2003 codec is used, which differs for a
few rare characters (such as ß).
"""

from __future__ import annotations

import socket
from typing import Any

from .token import running_loop

__all__ = ("getaddrinfo", "getnameinfo")


def _encode_host(host: str) -> bytes:
    try:
        return host.encode("ascii")
    except UnicodeEncodeError:
        pass
    try:
        import idna
    except ImportError:
        return host.encode("idna")
    encoded: bytes = idna.encode(host, uts46=True)
    return encoded


def _pair(sockaddr: Any) -> Any:
    if isinstance(sockaddr, tuple) and len(sockaddr) == 4:
        host, port, _flowinfo, scope_id = sockaddr
        if scope_id:
            return f"{host.split('%')[0]}%{scope_id}", port
        return host, port
    return sockaddr


async def getaddrinfo(host: bytes | str | None, port: str | int | None, *,
                      family: int | socket.AddressFamily = 0,
                      type: int | socket.SocketKind = 0, proto: int = 0,
                      flags: int = 0) -> list[tuple[socket.AddressFamily, socket.SocketKind,
                                                    int, str, tuple[str, int]]]:
    """Resolve ``host``/``port`` like ``socket.getaddrinfo``, without blocking the loop.

    Returns ``(family, type, proto, canonname, (host, port))`` tuples: IPv6 addresses
    are pairs too.  Results of an IPv6 family the Python build cannot represent
    (``sockaddr[0]`` an int) are left out, as AnyIO does.
    """
    loop = running_loop("getaddrinfo()")
    encoded = _encode_host(host) if isinstance(host, str) else host
    results = await loop.getaddrinfo(encoded, port, family=family, type=type, proto=proto,
                                     flags=flags)
    return [(fam, kind, pro, canonname, _pair(sockaddr))
            for fam, kind, pro, canonname, sockaddr in results
            if not isinstance(sockaddr[0], int)]


async def getnameinfo(sockaddr: tuple[str, int], flags: int = 0) -> tuple[str, str]:
    """Look up the host and service names of ``sockaddr``, like ``socket.getnameinfo``."""
    return await running_loop("getnameinfo()").getnameinfo(sockaddr, flags)
