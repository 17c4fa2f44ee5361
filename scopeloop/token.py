"""Event loop tokens: how another thread names the loop it wants to call into.

``lowlevel.current_token()`` returns an ``EventLoopToken`` for the running loop; a
thread that holds it can call ``from_thread.run(func, token=token)`` and
``from_thread.run_sync(func, token=token)`` without being a scopeloop worker
thread.  Once the loop is closed those raise ``RunFinishedError``; a call that is
still waiting when the loop closes gets ``RunFinishedError`` too, rather than
blocking its thread forever (asyncio's ``close()`` drops queued callbacks
silently, so the loop's ``close()`` fails the calls still registered here).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from typing import Any, final

__all__ = ("EventLoopToken", "current_token", "NoEventLoopError", "RunFinishedError")


class NoEventLoopError(RuntimeError):
    """An API that needs a running event loop was called where none runs.

    Also raised by ``from_thread.run``/``run_sync`` when called from a thread that is
    not a scopeloop worker thread and no ``token`` was given.
    """


class RunFinishedError(RuntimeError):
    """The event loop a token names has finished (it is closed), so it cannot run the call."""

    def __init__(self, message: str = "the event loop associated with the given token "
                                      "has already finished") -> None:
        super().__init__(message)


@final
class EventLoopToken:
    """An opaque, hashable reference to one event loop, usable from any thread.

    ``loop`` is the asyncio loop it names (read it only to compare or to pass on:
    most of a loop's methods are not thread-safe).
    """

    __slots__ = ("_loop", "__weakref__")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this token names."""
        return self._loop

    @property
    def native_token(self) -> asyncio.AbstractEventLoop:
        """The backend's own token (AnyIO's name): for asyncio, the loop itself."""
        return self._loop

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EventLoopToken) and other._loop is self._loop

    def __hash__(self) -> int:
        return hash(self._loop)

    def __repr__(self) -> str:
        return f"<EventLoopToken for {self._loop!r}>"


def running_loop(api: str) -> asyncio.AbstractEventLoop:
    """The running loop, or NoEventLoopError saying which API needed one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise NoEventLoopError(f"{api} needs a running event loop in this thread "
                               f"(call it from inside scopeloop.run())") from None


def current_token() -> EventLoopToken:
    """A token for the running event loop, for other threads to call into it.

    Raises NoEventLoopError if no event loop runs in this thread.
    """
    return EventLoopToken(running_loop("lowlevel.current_token()"))


# Calls other threads made through a token and that have not completed yet, per
# loop: the loop's close() fails them (see the module docstring).  The lock orders
# "is the loop closed? then register and schedule" against close().
_pending_lock = threading.Lock()
_pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                    set[concurrent.futures.Future[Any]]] = (
    weakref.WeakKeyDictionary())
_finished: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def schedule(loop: asyncio.AbstractEventLoop, done: concurrent.futures.Future[Any],
             callback: Any, *args: Any, context: Any = None) -> None:
    """``loop.call_soon_threadsafe(callback, *args)`` for a call whose outcome is ``done``.

    Raises RunFinishedError if the loop is closed; if it closes before ``done`` is
    resolved, ``done`` gets RunFinishedError.
    """
    with _pending_lock:
        if loop.is_closed() or loop in _finished:
            raise RunFinishedError
        calls = _pending.get(loop)
        if calls is None:
            calls = _pending[loop] = set()
        calls.add(done)
        try:
            loop.call_soon_threadsafe(callback, *args, context=context)
        except RuntimeError:
            calls.discard(done)
            if loop.is_closed():
                raise RunFinishedError from None
            raise
    done.add_done_callback(lambda f: _forget(loop, f))


def _forget(loop: asyncio.AbstractEventLoop, done: concurrent.futures.Future[Any]) -> None:
    with _pending_lock:
        calls = _pending.get(loop)
        if calls is not None:
            calls.discard(done)


def loop_closing(loop: asyncio.AbstractEventLoop) -> None:
    """Called by a scopeloop loop's ``close()``: fail the token calls still waiting."""
    with _pending_lock:
        _finished.add(loop)
        calls = _pending.pop(loop, ())
    for done in list(calls):
        if not done.done():
            try:
                done.set_exception(RunFinishedError(
                    "the event loop closed before the call could complete"))
            except concurrent.futures.InvalidStateError:
                pass  # completed meanwhile
