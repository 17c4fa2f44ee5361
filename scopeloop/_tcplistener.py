"""TCP listeners: ``TCPListener`` and ``create_tcp_listener()`` (AnyIO's API).

``TCPListener.accept()`` takes one connection when asked (the kernel's backlog holds
the rest), while ``serve()`` lets the loop accept natively and starts each handler
from the connection callback, which makes short connections as cheap as with
``asyncio.start_server``.  Using a listener after ``aclose()`` raises
ClosedResourceError; two tasks accepting at once raise BusyResourceError.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._resource_errors import ClosedResourceError
from ._tcpaddress import _format_address, _resolve
from ._tcpstream import (
    SocketStream,
    _cancel_pending,
    _socket_attributes,
    _StreamProtocol,
    _validate_socket,
    _wake,
    _wrap,
)
from .abc import Listener
from .group import TaskGroup, create_task_group
from .guard import BusyResourceError

__all__ = ("TCPListener", "create_tcp_listener")


class _ServedProtocol(_StreamProtocol):
    """The protocol of a connection accepted by ``TCPListener.serve()``: starts its handler."""

    def __init__(self, group: TaskGroup, handler: Callable[[SocketStream], Awaitable[Any]]) -> None:
        super().__init__()
        self._serve = (group, handler)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        group, handler = self._serve
        stream = SocketStream(transport, self)  # type: ignore[arg-type]
        try:
            group.start_soon(_serve_one, handler, stream)
        except RuntimeError:
            transport.abort()  # type: ignore[attr-defined]  # the group has exited


async def _serve_one(handler: Callable[[SocketStream], Awaitable[Any]], stream: SocketStream) -> None:
    async with stream:
        await handler(stream)


class TCPListener(Listener[SocketStream]):
    """Listening TCP sockets (one per local address) that ``accept()`` connections.

    Made by ``create_tcp_listener()``.  ``extra()`` describes the first socket; all
    sockets share the same port.
    """

    def __init__(self, sockets: list[socket.socket], backlog: int = 65535) -> None:
        if not sockets:
            raise ValueError("a TCPListener needs at least one listening socket")
        self._sockets = sockets
        self._backlog = backlog
        self._closed = False
        self._stop_serving: asyncio.Future[None] | None = None
        self._accepting = False
        self._waiter: asyncio.Future[None] | None = None
        # The loop we registered readers with (None: not watching).  Readers stay
        # registered between accept() calls, so an accept loop does not re-arm the
        # poller for every connection; they are removed when readiness finds nobody
        # waiting, and on aclose().
        self._watching: asyncio.AbstractEventLoop | None = None
        self._next = 0  # round-robin start, so no socket starves the others

    @classmethod
    async def from_socket(cls, sock_or_fd: socket.socket | int) -> TCPListener:
        """Wrap a bound TCP socket (or its file descriptor) as a listener.

        A socket that is not listening yet is put in listening mode.  The listener
        takes ownership of the socket and closes it with ``aclose()``.
        """
        sock = _validate_socket(sock_or_fd, require_bound=True)
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.listen(65535)
        return cls([sock])

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (read-only use: do not accept on them directly)."""
        return tuple(self._sockets)

    async def accept(self) -> SocketStream:
        """Wait for the next incoming connection and return it as a SocketStream."""
        loop = asyncio.get_running_loop()
        if self._accepting:
            raise BusyResourceError("accepting on")
        if _cancel_pending(loop):
            await asyncio.sleep(0)
        self._accepting = True
        try:
            while True:
                if self._closed:
                    raise ClosedResourceError("this listener was closed with aclose()")
                conn = self._try_accept()
                if conn is not None:
                    break
                if self._watching is None:
                    self._watching = loop
                    for sock in self._sockets:
                        loop.add_reader(sock.fileno(), self._readable)
                waiter = self._waiter = loop.create_future()
                try:
                    await waiter
                finally:
                    self._waiter = None
        finally:
            self._accepting = False
        return await _wrap(loop, conn, accepted=True)

    def _readable(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self._unwatch()  # nobody is accepting: stop watching until someone does
        else:
            waiter.set_result(None)

    def _unwatch(self) -> None:
        loop, self._watching = self._watching, None
        if loop is not None:
            for sock in self._sockets:
                loop.remove_reader(sock.fileno())

    def _try_accept(self) -> socket.socket | None:
        count = len(self._sockets)
        for i in range(count):
            sock = self._sockets[(self._next + i) % count]
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            self._next = (self._next + i + 1) % count
            conn.setblocking(False)
            return conn
        return None

    async def serve(self, handler: Callable[[SocketStream], Awaitable[Any]],
                    task_group: TaskGroup | None = None) -> None:
        """Accept connections until the listener is closed, running ``handler(stream)``
        for each in a task.

        Each stream is closed when its handler returns.  Handlers run in
        ``task_group`` (default: a group of this call's own, so ``serve()`` returns
        only when they are done).  While ``serve()`` runs, ``accept()`` raises
        BusyResourceError.

        Unlike ``accept()``, serving lets the loop accept connections as they come
        (``loop.create_server()`` on duplicates of the listening sockets, native in
        uvloop) and starts each handler from the connection callback: one loop
        iteration and one task step less per connection than an accept loop.
        """
        if self._accepting:
            raise BusyResourceError("accepting on")
        if task_group is None:
            async with create_task_group() as group:
                await self._serve(handler, group)
        else:
            await self._serve(handler, task_group)

    async def _serve(self, handler: Callable[[SocketStream], Awaitable[Any]],
                     group: TaskGroup) -> None:
        loop = asyncio.get_running_loop()
        if _cancel_pending(loop):
            await asyncio.sleep(0)
        if self._closed:
            return
        self._accepting = True
        self._unwatch()  # readers an earlier accept() left: the servers watch now

        def protocol() -> _ServedProtocol:
            return _ServedProtocol(group, handler)

        servers: list[asyncio.AbstractServer] = []
        try:
            for sock in self._sockets:
                # A duplicate, because closing a server closes its socket and this
                # listener stays usable after serve() returns.
                duplicate = sock.dup()
                try:
                    servers.append(await loop.create_server(protocol, sock=duplicate,
                                                            backlog=self._backlog))
                except BaseException:
                    duplicate.close()
                    raise
            stop = self._stop_serving = loop.create_future()
            await stop
        finally:
            self._stop_serving = None
            for server in servers:
                server.close()  # stops accepting; connections being served go on
            self._accepting = False

    async def aclose(self) -> None:
        """Close the listening sockets; a task waiting in ``accept()`` raises ClosedResourceError."""
        if self._closed:
            return
        self._closed = True
        self._unwatch()  # before closing: the numbers may soon belong to other sockets
        _wake(self._waiter)
        _wake(self._stop_serving)
        for sock in self._sockets:
            sock.close()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return _socket_attributes(self._sockets[0], peer=False)

    def __repr__(self) -> str:
        if self._closed:
            return "<TCPListener closed>"
        addresses = ", ".join(_format_address(s.getsockname()) for s in self._sockets)
        return f"<TCPListener on {addresses}>"


async def create_tcp_listener(*, local_host: str | None = None, local_port: int = 0,
                              family: int = socket.AF_UNSPEC, backlog: int = 65536,
                              reuse_port: bool = False) -> TCPListener:
    """Listen for TCP connections on every address ``local_host`` resolves to.

    ``local_host=None`` listens on all IPv4 and IPv6 interfaces (restrict with
    ``family``).  With ``local_port=0`` the system picks a free port, the same for
    every address.
    """
    loop = asyncio.get_running_loop()
    backlog = min(backlog, 65535)
    host = None if local_host is None else str(local_host)
    targets = await _resolve(loop, host, local_port, family,
                             socket.AI_PASSIVE | socket.AI_ADDRCONFIG)
    if not targets:
        raise OSError(f"{local_host!r} resolved to no IPv4 or IPv6 address")
    sockets: list[socket.socket] = []
    try:
        port = local_port
        for fam, addr in targets:
            sock = socket.socket(fam, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setblocking(False)
            if fam == socket.AF_INET6:
                # Keep the IPv6 socket off IPv4, which has a socket of its own.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if sys.platform != "win32":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((addr[0], port, *addr[2:]))
            if port == 0:
                port = sock.getsockname()[1]
            sock.listen(backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return TCPListener(sockets, backlog)
