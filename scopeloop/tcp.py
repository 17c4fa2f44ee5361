"""TCP (AnyIO's API): ``connect_tcp()`` with RFC 8305 Happy Eyeballs and TLS, and
the public face of the TCP streams (``_tcpstream.py``) and listeners
(``_tcplistener.py``).

``connect_tcp()`` resolves the host, orders the addresses as RFC 8305 asks (the
family of the first result first, then alternating families) and races connection
attempts in a scopeloop task group: each attempt starts when the previous one
fails or after ``happy_eyeballs_delay`` seconds, whichever comes first; the first
connection wins and the group's cancel scope cancels the rest, whose sockets are
closed.  Because the race is a scope cancellation, it cannot leave a cancel count
behind in the calling task: ``cancelling()`` is 0 after any number of connects.

TLS: ``connect_tcp(..., tls=True)`` (implied by ``ssl_context`` or ``tls_hostname``)
does the handshake with the loop's own ``start_tls()`` (native on uvloop) and returns
a SocketStream over the TLS transport, so the same fast path serves both.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
from typing import Any

from ._resource_errors import BrokenResourceError
from ._tcpaddress import SockAddr, _format_address, _resolve
from ._tcplistener import TCPListener, create_tcp_listener
from ._tcpstream import SocketAttribute, SocketStream, TLSAttribute, _StreamProtocol
from .group import TaskGroup, create_task_group
from .guard import BusyResourceError
from .scope import CancelScope, _check_delay, move_on_after
from .typedattr import TypedAttributeLookupError

__all__ = (
    "connect_tcp", "create_tcp_listener", "SocketStream", "TCPListener", "SocketAttribute",
    "TLSAttribute", "TypedAttributeLookupError", "BusyResourceError",
)


def _interleave(targets: list[tuple[int, SockAddr]]) -> list[tuple[int, SockAddr]]:
    """RFC 8305 section 4: the first result's family first, then alternate families."""
    if not targets:
        return targets
    first = targets[0][0]
    preferred = [t for t in targets if t[0] == first]
    other = [t for t in targets if t[0] != first]
    result: list[tuple[int, SockAddr]] = []
    for i in range(max(len(preferred), len(other))):
        result.extend(group[i] for group in (preferred, other) if i < len(group))
    return result


def _connect_error(host: Any, port: int, errors: list[tuple[SockAddr, OSError]]) -> OSError:
    """One OSError naming every address tried; its errno (and so its subclass, e.g.
    ConnectionRefusedError) is the attempts' common errno, if they share one."""
    detail = "; ".join(f"{_format_address(addr)}: {exc}" for addr, exc in errors)
    codes = {exc.errno for _, exc in errors}
    code = codes.pop() if len(codes) == 1 else None
    what = "the connection attempt" if len(errors) == 1 else f"all {len(errors)} connection attempts"
    message = f"{what} to {host}:{port} failed: {detail}"
    error = OSError(code, message) if code is not None else OSError(message)
    error.__cause__ = ExceptionGroup("connection attempts", [exc for _, exc in errors])
    return error


async def connect_tcp(remote_host: str | ipaddress.IPv4Address | ipaddress.IPv6Address,
                      remote_port: int, *, local_host: str | None = None,
                      local_port: int | None = None, tls: bool = False,
                      ssl_context: ssl.SSLContext | None = None,
                      tls_standard_compatible: bool = True, tls_hostname: str | None = None,
                      happy_eyeballs_delay: float = 0.25) -> SocketStream:
    """Connect to ``remote_host:remote_port`` over TCP and return a SocketStream.

    All the addresses the host resolves to are tried, RFC 8305 style: in
    interleaved family order, each attempt starting ``happy_eyeballs_delay``
    seconds after the previous one or as soon as it fails; the first connection
    wins and the others are cancelled and closed.  ``local_host`` binds the local
    end, to ``local_port`` if given (as in AnyIO, ``local_port`` needs ``local_host``).
    Raises OSError naming every address tried and its error if none connects.

    With ``tls=True``, or an ``ssl_context`` or ``tls_hostname`` given, the
    connection then does a TLS handshake as a client (``ssl_context`` defaults to
    ``ssl.create_default_context()``, which verifies the server's certificate for
    ``tls_hostname``, by default ``remote_host``) and the stream speaks TLS; a failed
    handshake raises ``ssl.SSLError`` and closes the connection.
    ``tls_standard_compatible`` makes ``aclose()`` send close_notify first.
    """
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, not {type(ssl_context).__name__}; "
                        f"make one with ssl.create_default_context()")
    loop = asyncio.get_running_loop()
    delay = _check_delay(happy_eyeballs_delay)
    if delay < 0:
        raise ValueError("happy_eyeballs_delay must not be negative")
    host = str(remote_host)
    targets = _interleave(await _resolve(loop, host, remote_port))
    if not targets:
        raise OSError(f"{host!r} resolved to no IPv4 or IPv6 address")
    local = (None if local_host is None
             else await _resolve(loop, str(local_host), local_port or 0))
    errors: list[tuple[SockAddr, OSError]] = []
    if len(targets) == 1:
        stream = await _attempt(loop, targets[0], local, errors)
    else:
        stream = await _race(loop, targets, local, delay, errors)
    if stream is None:
        raise _connect_error(host, remote_port, errors)
    if tls or ssl_context is not None or tls_hostname is not None:
        await _start_tls(loop, stream, ssl_context or ssl.create_default_context(),
                         tls_hostname or host, tls_standard_compatible)
    return stream


async def _start_tls(loop: asyncio.AbstractEventLoop, stream: SocketStream,
                     context: ssl.SSLContext, hostname: str, close_notify: bool) -> None:
    """Turn ``stream`` into a TLS client stream in place; aborts it on any failure."""
    protocol = stream._protocol
    try:
        transport = await loop.start_tls(stream._transport, protocol, context,
                                         server_hostname=hostname)
    except BaseException:
        # Cancelled or failed mid-handshake: nothing usable is left of the connection.
        # The raw transport now reports to the loop's TLS protocol, which passes the
        # connection loss on only after a handshake; take it back, so that aclose()
        # hears the socket close and returns only once it has.
        stream._transport.set_protocol(protocol)
        await stream.aclose()
        raise
    if transport is None:  # pragma: no cover - only if the loop closed meanwhile
        stream._transport.abort()
        raise BrokenResourceError("the connection closed during the TLS handshake")
    stream._speak_tls(transport, close_notify)


async def _attempt(loop: asyncio.AbstractEventLoop, target: tuple[int, SockAddr],
                   local: list[tuple[int, SockAddr]] | None,
                   errors: list[tuple[SockAddr, OSError]]) -> SocketStream | None:
    """One connection attempt: the stream, or None (the error is recorded).

    The loop's own ``create_connection()`` does the connecting (native in uvloop)
    and closes the socket if it fails or is cancelled.
    """
    family, addr = target
    host = addr[0] if len(addr) < 4 or not addr[3] else f"{addr[0]}%{addr[3]}"
    local_addr = None
    try:
        if local is not None:
            local_addr = next((a for f, a in local if f == family), None)
            if local_addr is None:
                raise OSError(errno.EAFNOSUPPORT,
                              "local_host has no address of this address family")
        transport, protocol = await loop.create_connection(
            _StreamProtocol, host, addr[1], family=family, proto=socket.IPPROTO_TCP,
            flags=socket.AI_NUMERICHOST, local_addr=local_addr)
    except OSError as exc:
        errors.append((addr, exc))
        return None
    return SocketStream(transport, protocol)


async def _race(loop: asyncio.AbstractEventLoop, targets: list[tuple[int, SockAddr]],
                local: list[tuple[int, SockAddr]] | None, delay: float,
                errors: list[tuple[SockAddr, OSError]]) -> SocketStream | None:
    winner: SocketStream | None = None

    async def contender(target: tuple[int, SockAddr], failed: asyncio.Future[None],
                        group: TaskGroup) -> None:
        nonlocal winner
        stream = await _attempt(loop, target, local, errors)
        if stream is None:
            if not failed.done():
                failed.set_result(None)  # start the next attempt right away
        elif winner is None:
            winner = stream
            group.cancel_scope.cancel()
        else:
            await stream.aclose()  # connected in the same moment as the winner

    try:
        async with create_task_group() as group:
            last = len(targets) - 1
            for i, target in enumerate(targets):
                failed = loop.create_future()
                group.start_soon(contender, target, failed, group)
                if i < last:
                    with move_on_after(delay):
                        await failed
    except BaseException:
        if winner is not None:
            with CancelScope(shield=True):
                await winner.aclose()
        raise
    return winner
