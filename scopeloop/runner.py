"""``scopeloop.run()`` and ``Runner``: asyncio.Runner with scopeloop's Ctrl+C policy.

The main coroutine runs inside a root cancel scope.  The first SIGINT cancels that
scope (reason "KeyboardInterrupt"), so shielded cleanup runs to completion while
the rest of the program unwinds; ``run()`` then raises a bare KeyboardInterrupt.

A second SIGINT (or any SIGINT while ``close()`` waits for leftover tasks and
threads) abandons the loop: ``run()`` raises KeyboardInterrupt at once, and no
task takes another step.  Waiting for anything at that point would break the
promise, since a task may be waiting in a shield for as long as it likes, and a
worker thread cannot be interrupted at all.  So the abandoned tasks' coroutines
are closed where they stand, as Python closes an abandoned generator: ``finally``
blocks run up to their first ``await`` and no further; threads are left to the
interpreter (scopeloop's workers are daemon threads); the loop is closed.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import signal
import socket
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine
from types import FrameType, TracebackType
from typing import Any, TypeVar

from ._cpython import abandon_quietly, get_running_loop_or_none
from .loop import new_event_loop
from .scope import CancelScope

__all__ = ("run", "Runner")

T = TypeVar("T")


class Runner:
    """Run coroutines on one scopeloop loop, like ``asyncio.Runner``.

    Use as a context manager; ``run()`` may be called several times.  ``close()``
    cancels what is left, shuts down async generators and the default executor.
    """

    def __init__(self, *, backend: str | None = None, debug: bool | None = None,
                 anyio_bridge: bool | None = None) -> None:
        self._runner = asyncio.Runner(
            debug=debug, loop_factory=functools.partial(new_event_loop, backend, debug=debug,
                                                        anyio_bridge=anyio_bridge))
        self._root: CancelScope | None = None
        self._interrupts = 0
        # Set by the SIGINT that abandons the loop (_abandoning), and once it is done;
        # from then on nothing runs on the loop.
        self._abandoning = False
        self._abandoned = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> Runner:
        self._runner.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Cancel remaining tasks, then shut down and close the loop.

        A SIGINT meanwhile stops the waiting: the loop is abandoned (see the module
        docstring) and KeyboardInterrupt raised.
        """
        if self._abandoned:
            return
        if self._loop is None:  # never used: nothing to wait for
            self._runner.close()
            return
        hook = _SigintHook(self._on_sigint, self._loop)
        try:
            self._runner.close()
        except KeyboardInterrupt:
            self._abandon()
            raise
        finally:
            hook.remove()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The loop this runner runs on (created on first use)."""
        if self._abandoned:
            raise RuntimeError("this Runner was abandoned by a second Ctrl+C; "
                               "create a new one")
        if self._loop is None:
            self._loop = self._runner.get_loop()
        return self._loop

    def run(self, main: Callable[..., Awaitable[T]] | Coroutine[Any, Any, T], *args: Any,
            context: contextvars.Context | None = None) -> T:
        """Run ``main(*args)`` (or the coroutine ``main``) to completion; return its result."""
        if get_running_loop_or_none() is not None:
            raise RuntimeError("scopeloop.run() cannot be called from a running event loop; "
                               "await the coroutine instead")
        self.get_loop()  # (raises if abandoned, before a coroutine exists)
        coro = _as_coroutine(main, args)
        self._interrupts = 0
        hook = _SigintHook(self._on_sigint, self.get_loop())
        try:
            result: T = self._runner.run(self._run_main(coro), context=context)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            if self._interrupts:
                raise KeyboardInterrupt() from (None if isinstance(exc, asyncio.CancelledError) else exc)
            raise
        finally:
            hook.remove()
            self._root = None
            if self._abandoning:
                self._abandon()
        if self._interrupts:
            raise KeyboardInterrupt()
        return result

    async def _run_main(self, coro: Coroutine[Any, Any, T]) -> T:
        with CancelScope() as root:
            self._root = root
            return await coro
        # Only reached when the root scope swallowed its own cancellation (Ctrl+C);
        # run() turns that into KeyboardInterrupt.
        raise asyncio.CancelledError("main was cancelled by Ctrl+C")

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        self._interrupts += 1
        root = self._root
        loop = self._loop
        assert loop is not None
        if self._interrupts == 1 and root is not None and not loop.is_closed():
            loop.call_soon_threadsafe(root.cancel, "KeyboardInterrupt")
            return
        # The second one (or one while close() waits): nothing may run any more.
        first = not self._abandoning
        self._abandoning = True
        if first and not loop.is_closed() and asyncio.current_task(loop) is not None:
            # Raised here, inside a task's step, the KeyboardInterrupt would be
            # caught by the task groups around that code, which wait for their
            # children (shielded cleanup too).  Raise it from the loop itself,
            # right after this step; another SIGINT still raises in place (for
            # a step that never ends).
            loop.call_soon_threadsafe(self._interrupt_loop)
            return
        raise KeyboardInterrupt()

    def _interrupt_loop(self) -> None:
        raise KeyboardInterrupt()

    def _abandon(self) -> None:
        """Close every unfinished task's coroutine where it stands, then the loop."""
        self._abandoned = True
        loop = self._loop
        assert loop is not None
        tasks = asyncio.all_tasks(loop)
        try:
            for task in tasks:
                _close_abandoned(loop, task)
        finally:
            if not loop.is_closed():
                loop.close()


_CLOSE_ATTEMPTS = 100
# Coroutines that would not close (they await again each time they are closed):
# kept, so that their finalizer never runs them at some arbitrary later moment.
_unclosable: list[Coroutine[Any, Any, Any]] = []


def _close_abandoned(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    """Close ``task``'s coroutine, as if the task were running (for scope exits)."""
    abandon_quietly(task)
    coro = task.get_coro()
    if not isinstance(coro, types.CoroutineType) or coro.cr_frame is None:
        return
    # GeneratorExit at the await where the task stands unwinds it; an await in a
    # finally block makes close() fail there, so close again from that await on.
    running = asyncio._get_running_loop()
    asyncio.events._set_running_loop(loop)
    asyncio.tasks._enter_task(loop, task)
    try:
        for _ in range(_CLOSE_ATTEMPTS):
            try:
                coro.close()
            except Exception:
                pass
            if coro.cr_frame is None:
                return
        _unclosable.append(coro)
    finally:
        asyncio.tasks._leave_task(loop, task)
        asyncio.events._set_running_loop(running)


def _as_coroutine(main: Any, args: tuple[Any, ...]) -> Coroutine[Any, Any, Any]:
    if asyncio.iscoroutine(main):
        if args:
            raise TypeError("scopeloop.run() got a coroutine object and extra arguments; "
                            "pass the async function and its arguments instead")
        return main
    if not callable(main):
        raise TypeError(f"scopeloop.run() expects an async function or a coroutine, "
                        f"not {type(main).__name__}")
    coro = main(*args)
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"scopeloop.run() expects an async function, but {main!r} returned "
                        f"{type(coro).__name__}; define it with 'async def'")
    return coro


class _SigintHook:
    """scopeloop's SIGINT handler, installed if Python's default one is in place.

    Nothing is installed off the main thread, or when the program has a handler of
    its own, which we respect.  With the handler comes a wakeup fd that the loop
    watches: Linux may deliver a process-wide SIGINT to any thread, and Python runs
    the handler only when the main thread next runs bytecode, so without it a loop
    asleep in select() would not notice Ctrl+C until its next timer.  (uvloop puts
    its own wakeup fd in place while it runs; the stdlib loop only does so for
    ``add_signal_handler``.)  A wakeup fd that is already set belongs to someone
    who reads it (the loop's own signal handling, say) and wakes the loop as well,
    so it is left alone, and ours is taken back only if it is still the one set.
    """

    def __init__(self, handler: Callable[[int, FrameType | None], None],
                 loop: asyncio.AbstractEventLoop) -> None:
        self._previous_handler: Any = None
        self._loop = loop
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return
        try:
            signal.signal(signal.SIGINT, handler)
        except ValueError:  # signals unavailable here (a subinterpreter)
            return
        self._previous_handler = signal.default_int_handler
        self._watch_wakeup_fd()

    def _watch_wakeup_fd(self) -> None:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        try:
            self._loop.add_reader(reader.fileno(), _drain, reader)
            previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except (RuntimeError, ValueError, OSError):
            self._close_sockets(reader, writer)
            return
        self._sockets = (reader, writer)
        if previous != -1 and _set_wakeup_fd_if_open(previous):
            self._sockets = None
            self._close_sockets(reader, writer)

    def _close_sockets(self, reader: socket.socket, writer: socket.socket) -> None:
        if not self._loop.is_closed():
            self._loop.remove_reader(reader.fileno())
        reader.close()
        writer.close()

    def remove(self) -> None:
        """Put back the handler and wakeup fd that were there before."""
        if self._sockets is not None:
            reader, writer = self._sockets
            self._sockets = None
            current = signal.set_wakeup_fd(-1)
            if current not in (-1, writer.fileno()):
                # The loop set its own meanwhile (add_signal_handler): it is theirs.
                _set_wakeup_fd_if_open(current)
            self._close_sockets(reader, writer)
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None


def _set_wakeup_fd_if_open(fd: int) -> bool:
    # A closed loop may leave its closed fd behind; setting that fails with EBADF.
    try:
        signal.set_wakeup_fd(fd)
    except OSError:
        return False
    return True


def _drain(sock: socket.socket) -> None:
    # The bytes are signal numbers; the handler itself runs as Python's signal
    # machinery calls it, once this wake-up has the main thread running bytecode.
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def run(main: Callable[..., Awaitable[T]] | Coroutine[Any, Any, T], *args: Any,
        backend: str | None = None, debug: bool | None = None,
        anyio_bridge: bool | None = None) -> T:
    """Run ``main(*args)`` on a new scopeloop loop and return its result.

    ``main`` is an async function (called with ``args``) or a coroutine object.
    ``backend`` is "uvloop" or "asyncio" (default: uvloop where installed, or the
    ``SCOPELOOP_BACKEND`` environment variable).  Ctrl+C cancels the program's root
    scope, lets shielded cleanup finish, then raises KeyboardInterrupt.
    ``anyio_bridge``: see ``new_event_loop``.
    """
    with Runner(backend=backend, debug=debug, anyio_bridge=anyio_bridge) as runner:
        return runner.run(main, *args)
