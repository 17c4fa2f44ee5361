"""TCP streams: ``SocketStream`` over an asyncio transport, and its attributes.

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

Flow control: reading pauses once 128 KiB are buffered and resumes below 64 KiB
(as ``StreamReader`` does); the transport's write buffer limit is 0, so ``send()``
returns once the kernel has taken all the data and ``aclose()`` (which aborts the
connection) never drops data a completed ``send()`` reported as sent.

Errors: using a stream after ``aclose()`` raises ClosedResourceError; a connection
the peer reset raises BrokenResourceError; ``receive()`` after the peer finished
sending raises EndOfStream; two tasks receiving at once raise BusyResourceError.

TLS (the handshake is in tcp.py): with ``tls_standard_compatible`` (the default),
``aclose()`` sends close_notify and lets the loop finish the TLS shutdown before
the socket closes; without it, or when the close is cancelled, the connection is
aborted.  ``extra(TLSAttribute.cipher)`` and friends describe the session.
asyncio's TLS transport reports an EOF without close_notify like a clean one, so
``receive()`` raises EndOfStream for both (AnyIO raises BrokenResourceError for the
first when standard compatible).

Extra attributes: ``stream.extra(SocketAttribute.remote_port)`` and friends, the
subset of AnyIO's ``SocketAttribute`` that applies to TCP (``family``,
``local_address``, ``local_port``, ``remote_address``, ``remote_port``,
``raw_socket``); a missing one raises TypedAttributeLookupError unless a default is
given.  IPv6 addresses are reported as ``(host, port)`` pairs, like AnyIO does.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from ._cpython import task_of_loop
from ._resource_errors import BrokenResourceError, ClosedResourceError, EndOfStream
from ._tcpaddress import _user_address
from ._waitqueue import will_raise
from .abc import ByteStream
from .guard import BusyResourceError
from .scope import CancelScope
from .task import is_scope_cancel
from .typedattr import TypedAttributeSet, typed_attribute

__all__ = ("SocketStream", "SocketAttribute", "TLSAttribute")

_READ_HIGH_WATER = 128 * 1024
_READ_LOW_WATER = 64 * 1024

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
    return will_raise(task)


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

    def _speak_tls(self, transport: asyncio.Transport, close_notify: bool) -> None:
        """Go on over ``transport``, the TLS transport the loop's ``start_tls()`` put
        on top of ours; ``close_notify``: whether ``aclose()`` sends it first."""
        # start_tls() does not call connection_made() again: point both at it.
        self._protocol.transport = transport
        transport.set_write_buffer_limits(0)
        self._transport = transport
        self._tls_close_notify = close_notify

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
            if not is_scope_cancel(exc):
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
