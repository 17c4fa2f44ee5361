"""``scopeloop.run()`` and ``Runner``: asyncio.Runner with scopeloop's Ctrl+C policy.

The main coroutine runs inside a root cancel scope.  The first SIGINT cancels that
scope (reason "KeyboardInterrupt"), so shielded cleanup runs to completion while
the rest of the program unwinds; ``run()`` then raises a bare KeyboardInterrupt.
A second SIGINT raises KeyboardInterrupt at once, as stock Python does.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import FrameType, TracebackType
from typing import Any, TypeVar

from ._cpython import get_running_loop_or_none
from .loop import new_event_loop
from .scope import CancelScope

__all__ = ("run", "Runner")

T = TypeVar("T")


class Runner:
    """Run coroutines on one scopeloop loop, like ``asyncio.Runner``.

    Use as a context manager; ``run()`` may be called several times.  ``close()``
    cancels what is left, shuts down async generators and the default executor.
    """

    def __init__(self, *, backend: str | None = None, debug: bool | None = None) -> None:
        self._runner = asyncio.Runner(
            debug=debug, loop_factory=functools.partial(new_event_loop, backend, debug=debug))
        self._root: CancelScope | None = None
        self._interrupts = 0

    def __enter__(self) -> Runner:
        self._runner.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Cancel remaining tasks, then shut down and close the loop."""
        self._runner.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The loop this runner runs on (created on first use)."""
        return self._runner.get_loop()

    def run(self, main: Callable[..., Awaitable[T]] | Coroutine[Any, Any, T], *args: Any,
            context: contextvars.Context | None = None) -> T:
        """Run ``main(*args)`` (or the coroutine ``main``) to completion; return its result."""
        if get_running_loop_or_none() is not None:
            raise RuntimeError("scopeloop.run() cannot be called from a running event loop; "
                               "await the coroutine instead")
        coro = _as_coroutine(main, args)
        self._interrupts = 0
        previous = _install_sigint(self._on_sigint)
        try:
            result: T = self._runner.run(self._run_main(coro), context=context)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            if self._interrupts:
                raise KeyboardInterrupt() from (None if isinstance(exc, asyncio.CancelledError) else exc)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            self._root = None
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
        if self._interrupts == 1 and root is not None:
            loop = self._runner.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(root.cancel, "KeyboardInterrupt")
                return
        if self._interrupts == 2 and root is not None:
            loop = self._runner.get_loop()
            if not loop.is_closed() and asyncio.current_task(loop) is not None:
                # Raised here, inside a task's step, the KeyboardInterrupt would be
                # caught by the task groups around that code, which wait for their
                # children (shielded cleanup too).  Raise it from the loop itself,
                # right after this step; a third SIGINT still raises in place (for
                # a step that never ends).
                loop.call_soon_threadsafe(self._interrupt_loop)
                return
        raise KeyboardInterrupt()

    def _interrupt_loop(self) -> None:
        if self._root is not None:  # not once run() is over (close() runs callbacks)
            raise KeyboardInterrupt()


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


def _install_sigint(handler: Callable[[int, FrameType | None], None]) -> Any:
    """Install ``handler`` for SIGINT if Python's default one is in place.

    Returns the handler to restore, or None when nothing was installed (not the
    main thread, or the program installed its own handler, which we respect).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        return None
    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:
        return None
    return previous


def run(main: Callable[..., Awaitable[T]] | Coroutine[Any, Any, T], *args: Any,
        backend: str | None = None, debug: bool | None = None) -> T:
    """Run ``main(*args)`` on a new scopeloop loop and return its result.

    ``main`` is an async function (called with ``args``) or a coroutine object.
    ``backend`` is "uvloop" or "asyncio" (default: uvloop where installed, or the
    ``SCOPELOOP_BACKEND`` environment variable).  Ctrl+C cancels the program's root
    scope, lets shielded cleanup finish, then raises KeyboardInterrupt.
    """
    with Runner(backend=backend, debug=debug) as runner:
        return runner.run(main, *args)
