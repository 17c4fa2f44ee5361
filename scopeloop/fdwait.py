"""Waiting for a file descriptor to be readable or writable (AnyIO's ``wait_readable``).

``await wait_readable(sock)`` returns once the loop's selector reports ``sock``
readable; ``notify_closing(sock)``, called before closing it, makes such waits
raise ClosedResourceError instead of hanging on a descriptor that will never
become ready (or worse, on a recycled one).  One task at a time may wait for each
direction of a descriptor: a second one gets BusyResourceError, as in Trio.

The waits use the loop's ``add_reader``/``add_writer``, which uvloop and the
stdlib selector loop implement; a wait is an ordinary future, so cancelling it is
plain scope delivery and the reader is removed on the way out.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any, Protocol, Union

from .guard import BusyResourceError
from .runvar import RunVar
from ._resource_errors import ClosedResourceError

__all__ = ("wait_readable", "wait_writable", "notify_closing", "wait_socket_readable",
           "wait_socket_writable")


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


FileDescriptorLike = Union[int, _HasFileno]

# fd -> the future its one waiter waits on (True: ready, False: notify_closing()).
_readers: RunVar[dict[int, asyncio.Future[bool]]] = RunVar("scopeloop readers")
_writers: RunVar[dict[int, asyncio.Future[bool]]] = RunVar("scopeloop writers")


def _fileno(obj: FileDescriptorLike) -> int:
    fd = obj if isinstance(obj, int) else obj.fileno()
    if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
        raise ValueError(f"expected a file descriptor (an int >= 0 or an object with "
                         f"fileno()), got {obj!r}")
    return fd


def _table(var: RunVar[dict[int, asyncio.Future[bool]]]) -> dict[int, asyncio.Future[bool]]:
    table = var.get(None)
    if table is None:
        table = {}
        var.set(table)
    return table


async def _wait(obj: FileDescriptorLike, var: RunVar[dict[int, asyncio.Future[bool]]],
                action: str, add: Callable[..., Any], remove: Callable[[int], Any]) -> None:
    fd = _fileno(obj)
    waiting = _table(var)
    if fd in waiting:
        raise BusyResourceError(action)
    fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(True)

    add(fd, ready)
    waiting[fd] = fut
    try:
        still_open = await fut
    finally:
        if waiting.get(fd) is fut:
            del waiting[fd]
            remove(fd)
    if not still_open:
        raise ClosedResourceError("the descriptor was closed (notify_closing()) while a "
                                  "task waited on it")


async def wait_readable(obj: FileDescriptorLike) -> None:
    """Wait until ``obj`` (a descriptor, or an object with ``fileno()``) is readable.

    Raises ClosedResourceError if ``notify_closing(obj)`` is called meanwhile, and
    BusyResourceError if another task already waits for it to be readable.  Do not
    use it on sockets that a stream or transport owns.
    """
    loop = asyncio.get_running_loop()
    await _wait(obj, _readers, "reading from", loop.add_reader, loop.remove_reader)


async def wait_writable(obj: FileDescriptorLike) -> None:
    """Wait until ``obj`` is writable; otherwise as ``wait_readable``."""
    loop = asyncio.get_running_loop()
    await _wait(obj, _writers, "writing to", loop.add_writer, loop.remove_writer)


def notify_closing(obj: FileDescriptorLike) -> None:
    """Wake the tasks waiting on ``obj`` with ClosedResourceError; call before closing it.

    It does not close anything itself.
    """
    fd = _fileno(obj)
    loop = asyncio.get_running_loop()
    for var, remove in ((_readers, loop.remove_reader), (_writers, loop.remove_writer)):
        waiting = var.get(None)
        fut = None if waiting is None else waiting.pop(fd, None)
        if fut is not None:
            remove(fd)
            if not fut.done():
                fut.set_result(False)


async def wait_socket_readable(sock: _HasFileno) -> None:
    """Deprecated (as in AnyIO 4.7+): use ``wait_readable``."""
    warnings.warn("wait_socket_readable() is deprecated; use wait_readable()",
                  DeprecationWarning, stacklevel=2)
    await wait_readable(sock.fileno())


async def wait_socket_writable(sock: _HasFileno) -> None:
    """Deprecated (as in AnyIO 4.7+): use ``wait_writable``."""
    warnings.warn("wait_socket_writable() is deprecated; use wait_writable()",
                  DeprecationWarning, stacklevel=2)
    await wait_writable(sock.fileno())
