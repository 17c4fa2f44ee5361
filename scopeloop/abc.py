"""Abstract base classes for resources and streams (AnyIO's ``anyio.abc`` names).

Code written against these works with scopeloop's memory object streams (which
are ``ObjectSendStream``/``ObjectReceiveStream``), its TCP streams (``ByteStream``)
and listeners (``Listener``), and with any other implementation of them.

Why the classes carry ``__slots__ = ()`` and no ``__init__``: the memory stream
handles derive from them, and an empty slot layout with no constructor of its own
adds nothing to creating a handle or calling its methods (method lookup finds the
concrete class's methods first).

``SocketStream``, ``SocketListener`` and ``SocketAttribute`` here are scopeloop's
concrete TCP classes (``scopeloop.SocketStream``, ``scopeloop.TCPListener``), imported
on first access so that this module stays light; they serve for annotations and
``isinstance`` as AnyIO's ABCs do.
"""

from __future__ import annotations

import importlib
from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeAlias, TypeVar, Union

from .group import TaskGroup, TaskStatus
from ._resource_errors import EndOfStream
from .scope import CancelScope
from .typedattr import TypedAttributeProvider

if TYPE_CHECKING:
    import ipaddress

    from .tcp import SocketAttribute
    from .tcp import SocketStream as SocketStream
    from .tcp import TCPListener as SocketListener

__all__ = (
    "AsyncResource", "aclose_forcefully",
    "UnreliableObjectReceiveStream", "UnreliableObjectSendStream", "UnreliableObjectStream",
    "ObjectReceiveStream", "ObjectSendStream", "ObjectStream",
    "ByteReceiveStream", "ByteSendStream", "ByteStream", "Listener",
    "ObjectStreamConnectable", "ByteStreamConnectable",
    "AnyUnreliableByteReceiveStream", "AnyUnreliableByteSendStream", "AnyUnreliableByteStream",
    "AnyByteReceiveStream", "AnyByteSendStream", "AnyByteStream", "AnyByteStreamConnectable",
    "IPAddressType", "IPSockAddrType",
    "SocketAttribute", "SocketStream", "SocketListener", "TaskGroup", "TaskStatus",
)

T_Item = TypeVar("T_Item")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class AsyncResource(metaclass=ABCMeta):
    """Something that must be closed with ``await aclose()``.

    An async context manager that returns itself on entry and closes itself on exit.
    """

    __slots__ = ()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    @abstractmethod
    async def aclose(self) -> None:
        """Close the resource (a checkpoint; idempotent in every scopeloop implementation)."""


async def aclose_forcefully(resource: AsyncResource) -> None:
    """Close ``resource`` inside a cancelled scope, so closing waits for nothing.

    Use it where a graceful close could block (a peer that does not read, a
    handshake that does not finish) and an abrupt one is acceptable.
    """
    with CancelScope() as scope:
        scope.cancel("aclose_forcefully()")
        await resource.aclose()


class _ReceivesUntilEnd:
    """``async for`` over a receive stream, object or byte: ``receive()`` until
    EndOfStream."""

    __slots__ = ()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()  # type: ignore[attr-defined]
        except EndOfStream:
            raise StopAsyncIteration from None


class UnreliableObjectReceiveStream(_ReceivesUntilEnd, AsyncResource, TypedAttributeProvider,
                                    Generic[T_co]):
    """Receives objects; no promise that they arrive in order or at all.

    ``async for item in stream`` receives until EndOfStream.
    """

    __slots__ = ()

    if TYPE_CHECKING:
        async def __anext__(self) -> T_co: ...

    @abstractmethod
    async def receive(self) -> T_co:
        """Receive the next item.

        Raises ClosedResourceError if this end was closed, EndOfStream if the other
        end was, BrokenResourceError if the stream broke.
        """


class UnreliableObjectSendStream(AsyncResource, TypedAttributeProvider, Generic[T_contra]):
    """Sends objects; no promise that they arrive in order or at all."""

    __slots__ = ()

    @abstractmethod
    async def send(self, item: T_contra) -> None:
        """Send ``item``.

        Raises ClosedResourceError if this end was closed, BrokenResourceError if
        nobody can receive it any more.
        """


class UnreliableObjectStream(UnreliableObjectReceiveStream[T_Item],
                             UnreliableObjectSendStream[T_Item]):
    """A bidirectional object stream with no promise of order or delivery."""

    __slots__ = ()


class ObjectReceiveStream(UnreliableObjectReceiveStream[T_co]):
    """Receives objects in the order they were sent, none missing."""

    __slots__ = ()


class ObjectSendStream(UnreliableObjectSendStream[T_contra]):
    """Sends objects that arrive in the order they were sent, none missing."""

    __slots__ = ()


class ObjectStream(ObjectReceiveStream[T_Item], ObjectSendStream[T_Item],
                   UnreliableObjectStream[T_Item]):
    """A bidirectional, ordered, reliable object stream."""

    __slots__ = ()

    @abstractmethod
    async def send_eof(self) -> None:
        """Tell the peer nothing more will be sent (idempotent); receiving goes on."""


class ByteReceiveStream(_ReceivesUntilEnd, AsyncResource, TypedAttributeProvider):
    """Receives bytes from one peer; ``async for chunk in stream`` until EndOfStream."""

    __slots__ = ()

    if TYPE_CHECKING:
        async def __anext__(self) -> bytes: ...

    @abstractmethod
    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive between 1 and ``max_bytes`` bytes; EndOfStream once the peer is done."""


class ByteSendStream(AsyncResource, TypedAttributeProvider):
    """Sends bytes to one peer."""

    __slots__ = ()

    @abstractmethod
    async def send(self, item: bytes) -> None:
        """Send all of ``item``."""


class ByteStream(ByteReceiveStream, ByteSendStream):
    """A bidirectional byte stream."""

    __slots__ = ()

    @abstractmethod
    async def send_eof(self) -> None:
        """Tell the peer nothing more will be sent (idempotent); receiving goes on."""


class Listener(AsyncResource, TypedAttributeProvider, Generic[T_co]):
    """Accepts incoming connections."""

    __slots__ = ()

    @abstractmethod
    async def serve(self, handler: Callable[[T_co], Any],
                    task_group: TaskGroup | None = None) -> None:
        """Accept connections and run ``handler(connection)`` for each in a task
        (in ``task_group``, or a group of this call's own)."""


class ObjectStreamConnectable(Generic[T_co], metaclass=ABCMeta):
    """Something that can open an object stream to a fixed endpoint."""

    __slots__ = ()

    @abstractmethod
    async def connect(self) -> ObjectStream[T_co]:
        """Connect and return the stream."""


class ByteStreamConnectable(metaclass=ABCMeta):
    """Something that can open a byte stream to a fixed endpoint."""

    __slots__ = ()

    @abstractmethod
    async def connect(self) -> ByteStream:
        """Connect and return the stream."""


#: Any unreliable bytes-oriented receive stream.
AnyUnreliableByteReceiveStream: TypeAlias = Union[
    UnreliableObjectReceiveStream[bytes], ByteReceiveStream]
#: Any unreliable bytes-oriented send stream.
AnyUnreliableByteSendStream: TypeAlias = Union[UnreliableObjectSendStream[bytes], ByteSendStream]
#: Any unreliable bytes-oriented stream.
AnyUnreliableByteStream: TypeAlias = Union[UnreliableObjectStream[bytes], ByteStream]
#: Any bytes-oriented receive stream.
AnyByteReceiveStream: TypeAlias = Union[ObjectReceiveStream[bytes], ByteReceiveStream]
#: Any bytes-oriented send stream.
AnyByteSendStream: TypeAlias = Union[ObjectSendStream[bytes], ByteSendStream]
#: Any bytes-oriented stream.
AnyByteStream: TypeAlias = Union[ObjectStream[bytes], ByteStream]
#: Any connectable that gives a bytes-oriented stream.
AnyByteStreamConnectable: TypeAlias = Union[ObjectStreamConnectable[bytes], ByteStreamConnectable]

#: An IP address: text or an ``ipaddress`` object.
IPAddressType: TypeAlias = Union[str, "ipaddress.IPv4Address", "ipaddress.IPv6Address"]
#: A socket address as ``(host, port)`` (IPv6: ``(host, port, flowinfo, scope_id)``).
IPSockAddrType: TypeAlias = tuple[str, int]

_LAZY = {
    "SocketAttribute": "SocketAttribute",
    "SocketStream": "SocketStream",
    "SocketListener": "TCPListener",
}


def __getattr__(name: str) -> Any:
    try:
        attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'scopeloop.abc' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(".tcp", __package__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
