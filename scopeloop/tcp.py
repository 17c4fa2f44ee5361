"""TCP streams and listeners (AnyIO's API) with RFC 8305 Happy Eyeballs.

``connect_tcp()`` resolves the host, orders the addresses as RFC 8305 asks (the
family of the first result first, then alternating families) and races connection
attempts in a scopeloop task group: each attempt starts when the previous one
fails or after ``happy_eyeballs_delay`` seconds, whichever comes first; the first
connection wins and the group's cancel scope cancels the rest, whose sockets are
closed.  Because the race is a scope cancellation, it cannot leave a cancel count
behind in the calling task: ``cancelling()`` is 0 after any number of connects.

Why transports and a small protocol rather than ``loop.sock_recv``/``sock_sendall``:
on uvloop, a transport reads and writes in C with the socket registered once,
whereas every ``sock_*`` call arms and disarms the poller and allocates a future;
on the stdlib loop both paths are Python, and the transport one is what asyncio's
own streams use.  ``SocketStream`` takes the data straight off the protocol's chunk
queue (no copy into a bytearray, unlike ``StreamReader``), so the echo benchmark
(``integration/bench/bench_tcp.py``) runs at asyncio streams' speed on both
backends.  ``receive()`` and ``send()`` yield to the loop only when they have to
wait, like asyncio's streams, but they are cancel points: they raise
CancelledError if the task is effectively cancelled.

Listeners: ``TCPListener.accept()`` takes one connection when asked (the kernel's
backlog holds the rest), while ``serve()`` lets the loop accept natively and starts
each handler from the connection callback, which makes short connections as cheap
as with ``asyncio.start_server``.

Flow control: reading pauses once 128 KiB are buffered and resumes below 64 KiB
(as ``StreamReader`` does); the transport's write buffer limit is 0, so ``send()``
returns once the kernel has taken all the data and ``aclose()`` (which aborts the
connection) never drops data a completed ``send()`` reported as sent.

Errors: using a stream or listener after ``aclose()`` raises ClosedResourceError; a
connection the peer reset raises BrokenResourceError; ``receive()`` after the peer
finished sending raises EndOfStream; two tasks receiving (or accepting) at once
raise BusyResourceError.

TLS: ``connect_tcp(..., tls=True)`` (implied by ``ssl_context`` or ``tls_hostname``)
does the handshake with the loop's own ``start_tls()`` (native on uvloop) and returns
a SocketStream over the TLS transport, so the same fast path serves both.  With
``tls_standard_compatible`` (the default), ``aclose()`` sends close_notify and lets
the loop finish the TLS shutdown before the socket closes; without it, or when the
close is cancelled, the connection is aborted.  ``extra(TLSAttribute.cipher)`` and
friends describe the session.  asyncio's TLS transport reports an EOF without
close_notify like a clean one, so ``receive()`` raises EndOfStream for both (AnyIO
raises BrokenResourceError for the first when standard compatible).

Extra attributes: ``stream.extra(SocketAttribute.remote_port)`` and friends, the
subset of AnyIO's ``SocketAttribute`` that applies to TCP (``family``,
``local_address``, ``local_port``, ``remote_address``, ``remote_port``,
``raw_socket``); a missing one raises TypedAttributeLookupError unless a default is
given.  IPv6 addresses are reported as ``(host, port)`` pairs, like AnyIO does.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from ._cpython import task_of_loop
from .abc import ByteStream, Listener
from .group import TaskGroup, create_task_group
from .guard import BusyResourceError
from .scope import CancelScope, _check_delay, move_on_after
from ._resource_errors import BrokenResourceError, ClosedResourceError, EndOfStream
from .task import ScopeCancelMessage, cancelled_region
from .typedattr import TypedAttributeLookupError, TypedAttributeSet, typed_attribute

__all__ = (
    "connect_tcp", "create_tcp_listener", "SocketStream", "TCPListener", "SocketAttribute",
    "TLSAttribute", "TypedAttributeLookupError", "BusyResourceError",
)

_READ_HIGH_WATER = 128 * 1024
_READ_LOW_WATER = 64 * 1024

SockAddr = tuple[Any, ...]


class SocketAttribute(TypedAttributeSet):
    """Keys for ``extra()`` on streams and listeners (AnyIO's ``SocketAttribute``)."""

    family: Any = typed_attribute()          #: ``socket.AddressFamily`` of the socket
    local_address: Any = typed_attribute()   #: ``(host, port)`` this side is bound to
    local_port: Any = typed_attribute()      #: the local port
    raw_socket: Any = typed_attribute()      #: the underlying socket object (do not read/write it)
    remote_address: Any = typed_attribute()  #: ``(host, port)`` of the peer
    remote_port: Any = typed_attribute()     #: the peer's port


class TLSAttribute(TypedAttributeSet):
    """Keys for ``extra()`` on a TLS stream (AnyIO's ``TLSAttribute``)."""

    alpn_protocol: Any = typed_attribute()  #: the ALPN protocol agreed on, or None
    channel_binding_tls_unique: Any = typed_attribute()  #: tls-unique channel binding bytes
    cipher: Any = typed_attribute()         #: ``(name, protocol version, secret bits)``
    peer_certificate: Any = typed_attribute()  #: the peer's certificate as a dict
    peer_certificate_binary: Any = typed_attribute()  #: the peer's certificate, DER bytes
    server_side: Any = typed_attribute()    #: True on the server's end
    shared_ciphers: Any = typed_attribute()  #: ciphers both ends offered (server side only)
    ssl_object: Any = typed_attribute()     #: the ``ssl.SSLObject`` (do not read or write it)
    standard_compatible: Any = typed_attribute()  #: aclose() does the TLS shutdown
    tls_version: Any = typed_attribute()    #: e.g. ``"TLSv1.3"``


def _tls_attributes(ssl_object: ssl.SSLObject, standard_compatible: bool
                    ) -> dict[Any, Callable[[], Any]]:
    return {
        TLSAttribute.alpn_protocol: ssl_object.selected_alpn_protocol,
        TLSAttribute.channel_binding_tls_unique: ssl_object.get_channel_binding,
        TLSAttribute.cipher: ssl_object.cipher,
        TLSAttribute.peer_certificate: lambda: ssl_object.getpeercert(False),
        TLSAttribute.peer_certificate_binary: lambda: ssl_object.getpeercert(True),
        TLSAttribute.server_side: lambda: ssl_object.server_side,
        TLSAttribute.shared_ciphers: lambda: (ssl_object.shared_ciphers()
                                              if ssl_object.server_side else None),
        TLSAttribute.ssl_object: lambda: ssl_object,
        TLSAttribute.standard_compatible: lambda: standard_compatible,
        TLSAttribute.tls_version: ssl_object.version,
    }


def _user_address(addr: Any) -> Any:
    # IPv6 sockaddrs are 4-tuples; report (host, port) with the scope in the host.
    if isinstance(addr, tuple) and len(addr) == 4:
        host, port, _flow, scope_id = addr
        return (f"{host}%{scope_id}" if scope_id else host, port)
    return addr


def _socket_attributes(sock: Any, peer: bool) -> dict[Any, Callable[[], Any]]:
    attributes: dict[Any, Callable[[], Any]] = {
        SocketAttribute.family: lambda: sock.family,
        SocketAttribute.local_address: lambda: _user_address(sock.getsockname()),
        SocketAttribute.local_port: lambda: sock.getsockname()[1],
        SocketAttribute.raw_socket: lambda: sock,
    }
    if peer:
        attributes[SocketAttribute.remote_address] = lambda: _user_address(sock.getpeername())
        attributes[SocketAttribute.remote_port] = lambda: sock.getpeername()[1]
    return attributes


# asyncio.current_task() is pure Python on 3.11; its dict lookup is what matters.
_task_of = task_of_loop


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> bool:
    """True if the current task's next checkpoint raises CancelledError.

    Checked by operations that may complete without waiting; an operation that
    waits is a checkpoint by itself (scope delivery cancels what it waits on).
    """
    task = _task_of(loop)
    if task is None:
        raise RuntimeError("TCP streams and listeners must be used inside a task")
    if task._must_cancel:
        return True
    # A plain asyncio Task has no _scope: only its native state counts.
    return cancelled_region(getattr(task, "_scope", None)) is not None


# -- the stream ----------------------------------------------------------------------

class _StreamProtocol(asyncio.Protocol):
    """Collects incoming chunks and connection events for one SocketStream."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.reading_paused = False
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.read_waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        self.lost_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()
        # send() returns once the kernel has everything (see the module docstring).
        self.transport.set_write_buffer_limits(0)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        if type(data) is not bytes:
            data = bytes(data)
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _READ_HIGH_WATER and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        _wake(self.read_waiter)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self.read_waiter)
        return True  # keep the transport open: the write side may still be used

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        _wake(self.read_waiter)
        _wake(self.write_waiter)
        _wake(self.lost_waiter)

    def pause_writing(self) -> None:
        if self.write_waiter is None or self.write_waiter.done():
            self.write_waiter = self.loop.create_future()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        _wake(self.write_waiter)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class SocketStream(ByteStream):
    """A TCP connection: a byte stream with AnyIO's ``SocketStream`` API.

    Made by ``connect_tcp()`` and ``TCPListener.accept()``.  Use it as an async
    context manager (or call ``aclose()``); ``async for chunk in stream`` receives
    until the peer finishes sending.
    """

    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closed = False
        self._eof_sent = False
        self._receiving = False
        self._sending = False
        # Set by _start_tls(): whether aclose() sends close_notify first.
        self._tls_close_notify: bool | None = None

    @classmethod
    async def from_socket(cls, sock_or_fd: socket.socket | int) -> SocketStream:
        """Wrap an already connected TCP socket (or its file descriptor).

        The stream takes ownership of the socket and closes it with ``aclose()``.
        """
        sock = _validate_socket(sock_or_fd, require_connected=True)
        return await _wrap(asyncio.get_running_loop(), sock, accepted=False)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive up to ``max_bytes`` bytes, waiting until at least one arrives.

        Raises EndOfStream once the peer has finished sending and everything was
        received.  If this raises CancelledError, no data was consumed.
        """
        if self._closed:
            raise ClosedResourceError("this stream was closed with aclose()")
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        protocol = self._protocol
        chunks = protocol.chunks
        if not chunks and not (protocol.eof or protocol.lost):
            # Waiting is the checkpoint: cancellation interrupts the wait.
            if self._receiving:
                raise BusyResourceError("receiving from")
            self._receiving = True
            try:
                waiter = protocol.read_waiter = protocol.loop.create_future()  # type: ignore[union-attr]
                await waiter
            finally:
                protocol.read_waiter = None
                self._receiving = False
        elif _cancel_pending(protocol.loop):  # type: ignore[arg-type]
            await asyncio.sleep(0)  # the checkpoint raises CancelledError
        if not chunks:
            self._raise_unreadable()
        chunk = chunks.popleft()
        if len(chunk) > max_bytes:
            chunks.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
        protocol.buffered -= len(chunk)
        if protocol.reading_paused and protocol.buffered <= _READ_LOW_WATER:
            protocol.reading_paused = False
            self._transport.resume_reading()
        return chunk

    def _raise_unreadable(self) -> None:
        if self._closed:
            raise ClosedResourceError("this stream was closed with aclose()")
        error = self._protocol.error
        if error is not None:
            raise BrokenResourceError(f"the connection broke: {error}") from error
        raise EndOfStream

    async def send(self, item: bytes | bytearray | memoryview) -> None:
        """Send all of ``item``; returns once the kernel has taken it.

        A send that raised CancelledError while waiting may have sent part of the data.
        """
        if _cancel_pending(self._protocol.loop):  # type: ignore[arg-type]
            await asyncio.sleep(0)  # the checkpoint raises CancelledError
        self._check_writable()
        if self._sending:
            raise BusyResourceError("sending on")
        protocol = self._protocol
        self._transport.write(item)
        waiter = protocol.write_waiter
        if waiter is not None and not waiter.done():
            self._sending = True
            try:
                await waiter
            finally:
                self._sending = False
            self._check_writable()

    def _check_writable(self) -> None:
        if self._closed:
            raise ClosedResourceError("this stream was closed with aclose()")
        if self._eof_sent:
            raise ClosedResourceError("this stream's sending side was closed with send_eof()")
        protocol = self._protocol
        if protocol.lost:
            error = protocol.error
            raise BrokenResourceError(f"the connection is gone: {error or 'closed by the peer'}"
                                      ) from error

    async def send_eof(self) -> None:
        """Finish sending (a TCP half-close); receiving keeps working.

        Not available on a TLS stream: TLS has no half-close (NotImplementedError).
        """
        if _cancel_pending(self._protocol.loop):  # type: ignore[arg-type]
            await asyncio.sleep(0)
        self._check_writable()
        if self._tls_close_notify is not None:
            raise NotImplementedError("send_eof() is not possible on a TLS stream: TLS has no "
                                      "half-close; use aclose(), which sends close_notify")
        self._eof_sent = True
        try:
            self._transport.write_eof()
        except OSError:
            pass  # the peer is gone: nothing more to tell it

    async def aclose(self) -> None:
        """Close the connection (abortively: unread data is discarded).

        Returns once the socket is closed.  Closing never raises, even in a cancelled
        scope, and closing twice does nothing.  Tasks waiting in ``receive()`` or
        ``send()`` raise ClosedResourceError.  A standard-compatible TLS stream
        first sends close_notify and waits for the TLS shutdown; cancelling that
        wait aborts the connection.
        """
        protocol = self._protocol
        if not self._closed:
            self._closed = True
            if self._tls_close_notify:
                self._transport.close()  # the loop does the TLS shutdown, then closes
            else:
                self._transport.abort()
            _wake(protocol.read_waiter)
            _wake(protocol.write_waiter)
        if not protocol.lost:
            # The transport closes the socket in a callback of the next loop iteration;
            # wait for it so that the descriptor is gone when aclose() returns.
            await _wait_closed(protocol)

    async def __aenter__(self) -> SocketStream:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __aiter__(self) -> SocketStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.receive()
        except EndOfStream:
            raise StopAsyncIteration from None

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        sock = self._transport.get_extra_info("socket")
        attributes = _socket_attributes(sock, peer=True) if sock is not None else {}
        if self._tls_close_notify is not None:
            ssl_object = self._transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                attributes.update(_tls_attributes(ssl_object, self._tls_close_notify))
        return attributes

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        try:
            peer = f" to {_user_address(self._transport.get_extra_info('peername'))}"
        except Exception:  # pragma: no cover - best effort only
            peer = ""
        return f"<SocketStream {state}{peer}>"


async def _wait_closed(protocol: _StreamProtocol) -> None:
    """Wait for ``connection_lost``, through scope cancellation (not native one).

    The wait is shielded only when the task is, or gets, cancelled: entering and
    leaving a shield on every close is a measurable part of a short connection.
    A cancelled close aborts the transport, so that a TLS shutdown the peer does
    not answer cannot hold the task (the loop's own timeout is 30 seconds).
    """
    loop = protocol.loop
    assert loop is not None
    shielded = _cancel_pending(loop)
    if shielded:
        protocol.transport.abort()  # type: ignore[union-attr]
    while not protocol.lost:
        waiter = protocol.lost_waiter = loop.create_future()
        if shielded:
            with CancelScope(shield=True):
                await waiter
            continue
        try:
            await waiter
        except asyncio.CancelledError as exc:
            protocol.transport.abort()  # type: ignore[union-attr]
            if not (exc.args and isinstance(exc.args[0], ScopeCancelMessage)):
                raise  # native cancellation is never held up; the socket closes anyway
            shielded = True  # the scope's next checkpoint raises it again


async def _wrap(loop: asyncio.AbstractEventLoop, sock: socket.socket, accepted: bool) -> SocketStream:
    """Put a connected socket under a transport; closes the socket on failure."""
    try:
        if accepted:
            transport, protocol = await loop.connect_accepted_socket(_StreamProtocol, sock)
        else:
            transport, protocol = await loop.create_connection(_StreamProtocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    return SocketStream(transport, protocol)


def _validate_socket(sock_or_fd: socket.socket | int, *, require_connected: bool = False,
                     require_bound: bool = False) -> socket.socket:
    """The TCP socket ``from_socket()`` was given, checked and made non-blocking."""
    if isinstance(sock_or_fd, bool) or not isinstance(sock_or_fd, (int, socket.socket)):
        raise TypeError(f"expected a socket or a file descriptor, "
                        f"not {type(sock_or_fd).__name__}")
    if isinstance(sock_or_fd, int):
        try:
            sock = socket.socket(fileno=sock_or_fd)
        except OSError as exc:
            if exc.errno == errno.ENOTSOCK:
                raise ValueError("the file descriptor does not refer to a socket") from exc
            raise
    else:
        sock = sock_or_fd
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError(f"expected an IPv4 or IPv6 socket, not {sock.family.name}")
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"expected a SOCK_STREAM socket, not {sock.type.name}")
        if require_connected:
            try:
                sock.getpeername()
            except OSError as exc:
                raise ValueError("the socket must be connected") from exc
        if require_bound and sock.getsockname()[1] == 0:
            raise ValueError("the socket must be bound to a local address")
    except BaseException:
        if isinstance(sock_or_fd, int):
            sock.detach()  # the descriptor stays the caller's
        raise
    sock.setblocking(False)
    return sock


# -- connecting ------------------------------------------------------------------------

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


def _format_address(addr: SockAddr) -> str:
    host, port = _user_address(addr)[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
    # start_tls() does not call connection_made() again: point both at the new transport.
    protocol.transport = transport
    transport.set_write_buffer_limits(0)
    stream._transport = transport
    stream._tls_close_notify = close_notify


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


# -- listening -------------------------------------------------------------------------

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
        if self._accepting:
            raise BusyResourceError("accepting on")
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

    async def __aenter__(self) -> TCPListener:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

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
