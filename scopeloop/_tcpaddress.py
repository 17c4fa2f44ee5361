"""Socket addresses for TCP: resolving a host to the (family, sockaddr) pairs to
connect to or listen on, and the ``(host, port)`` form users see.

Shared by connecting (tcp.py), listening (_tcplistener.py) and the streams'
attributes (_tcpstream.py).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

SockAddr = tuple[Any, ...]


def _user_address(addr: Any) -> Any:
    # IPv6 sockaddrs are 4-tuples; report (host, port) with the scope in the host.
    if isinstance(addr, tuple) and len(addr) == 4:
        host, port, _flow, scope_id = addr
        return (f"{host}%{scope_id}" if scope_id else host, port)
    return addr


async def _resolve(loop: asyncio.AbstractEventLoop, host: str | None, port: int,
                   family: int = socket.AF_UNSPEC, flags: int = 0) -> list[tuple[int, SockAddr]]:
    """(family, sockaddr) pairs for ``host``, in resolver order, without duplicates."""
    literal = _literal_address(host, port, family)
    if literal is not None:
        return [literal]
    try:
        # A literal address needs no resolver thread.
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0,
                                   flags | socket.AI_NUMERICHOST)
    except socket.gaierror:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM,
                                       flags=flags)
    seen: set[tuple[int, SockAddr]] = set()
    result = []
    for info in infos:
        key = (int(info[0]), tuple(info[4]))
        if key[0] in (socket.AF_INET, socket.AF_INET6) and key not in seen:
            seen.add(key)
            result.append(key)
    return result


def _literal_address(host: str | None, port: int, family: int) -> tuple[int, SockAddr] | None:
    """The sockaddr of a plain IPv4 or IPv6 literal, without getaddrinfo's enum work."""
    if host is None or "%" in host:
        return None  # wildcard or scoped IPv6: leave it to getaddrinfo
    for fam in (socket.AF_INET, socket.AF_INET6):
        if family in (socket.AF_UNSPEC, fam):
            try:
                socket.inet_pton(fam, host)
            except (OSError, ValueError):
                continue
            return (fam, (host, port) if fam == socket.AF_INET else (host, port, 0, 0))
    return None


def _format_address(addr: SockAddr) -> str:
    host, port = _user_address(addr)[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
