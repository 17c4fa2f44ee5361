"""Blocking portals: let ordinary threads run code in an event loop (AnyIO's API).

``with start_blocking_portal() as portal:`` starts a scopeloop loop in a new thread
and gives the calling thread a ``BlockingPortal`` into it: ``portal.call(fn, *args)``
runs ``fn`` in the loop (awaiting it if it returns an awaitable) and blocks until
it is done; ``portal.start_task_soon()`` starts a task and returns a
``concurrent.futures.Future`` for its result, whose ``cancel()`` cancels the task;
``portal.start_task()`` waits for ``task_status.started()`` as ``TaskGroup.start``
does; ``portal.wrap_async_context_manager()`` drives an async context manager from
sync code.  A portal can also be opened inside a running loop with
``async with BlockingPortal() as portal:`` and handed to threads.

Every task a portal starts runs in the portal's task group, inside a cancel scope
of its own that the future's ``cancel()`` cancels: leaving the portal waits for
them (or, after an error or ``stop(cancel_remaining=True)``, cancels them).

Calls cross threads through the loop's EventLoopToken (``token.schedule``), so a
call made while the loop shuts down gets RunFinishedError rather than hanging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from inspect import isawaitable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, overload

from .group import TaskStatus, create_task_group
from .scope import CancelScope
from .sync import Event
from .token import EventLoopToken, RunFinishedError, current_token, schedule

__all__ = ("BlockingPortal", "BlockingPortalProvider", "start_blocking_portal")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def _call_soon(token: EventLoopToken, func: Callable[..., object], *args: Any) -> bool:
    """Run ``func(*args)`` in ``token``'s loop soon; False if that loop has finished."""
    loop = token.loop
    if asyncio._get_running_loop() is loop:
        func(*args)
        return True
    try:
        loop.call_soon_threadsafe(func, *args)
    except RuntimeError:
        if loop.is_closed():
            return False
        raise
    return True


class _PortalTaskStatus(TaskStatus[Any]):
    """The ``task_status`` of a task started by ``BlockingPortal.start_task()``."""

    def __init__(self, future: concurrent.futures.Future[Any]) -> None:
        self._future = future

    def started(self, value: object = None) -> None:
        """Hand ``value`` to the thread waiting in ``start_task()``."""
        try:
            self._future.set_result(value)
        except concurrent.futures.InvalidStateError:
            raise RuntimeError("called 'started' twice on the same task status") from None


class BlockingPortal:
    """A way for other threads to run code in the event loop this portal was made in.

    Create it in the loop (it takes ``lowlevel.current_token()``) and enter it with
    ``async with``; calls from other threads are accepted until ``stop()`` (or the
    end of the ``async with``).  Its methods other than ``sleep_until_stopped``,
    ``stop`` and ``call_async`` must be called from another thread: called in the
    loop's own thread, they would block the loop that has to run them, so they raise
    RuntimeError.
    """

    def __init__(self) -> None:
        self._token = current_token()
        self._loop_thread: int | None = threading.get_ident()
        self._stop_event = Event()
        self._task_group = create_task_group()

    async def __aenter__(self) -> Self:
        await self._task_group.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool:
        await self.stop()
        return await self._task_group.__aexit__(exc_type, exc, tb)

    def _check_running(self) -> None:
        loop_thread = self._loop_thread
        if loop_thread is None:
            raise RuntimeError("this BlockingPortal is not running (it was stopped, or "
                               "its 'async with' block has not been entered or has ended)")
        if loop_thread == threading.get_ident():
            raise RuntimeError("this BlockingPortal method blocks until the loop has run "
                               "the call, so it cannot be called from the loop's own "
                               "thread; await the function directly instead")

    async def sleep_until_stopped(self) -> None:
        """Wait until ``stop()`` is called."""
        await self._stop_event.wait()

    async def stop(self, cancel_remaining: bool = False) -> None:
        """Accept no more calls and wake ``sleep_until_stopped()``.

        ``cancel_remaining=True`` also cancels the tasks still running; otherwise
        leaving the portal waits for them.
        """
        self._loop_thread = None
        self._stop_event.set()
        if cancel_remaining:
            self._task_group.cancel_scope.cancel("the blocking portal is shutting down")

    async def _call_func(self, func: Callable[..., Awaitable[T] | T], args: tuple[Any, ...],
                         kwargs: dict[str, Any], future: concurrent.futures.Future[T]) -> None:
        """Run one call in the loop and resolve ``future`` with its outcome."""
        scope: CancelScope | None = None

        def on_future_done(f: concurrent.futures.Future[T]) -> None:
            # The thread cancelled the future: cancel the task's scope, in the loop.
            if f.cancelled() and scope is not None:
                _call_soon(self._token, scope.cancel, "the future was cancelled")

        try:
            outcome = func(*args, **kwargs)
            if isawaitable(outcome):
                with CancelScope() as scope:
                    future.add_done_callback(on_future_done)
                    result = await outcome
                if scope.cancelled_caught:
                    # Only the future's cancel() cancels this scope: nobody wants
                    # the result.
                    future.set_running_or_notify_cancel()
                    return
            else:
                result = outcome
        except asyncio.CancelledError:
            future.cancel()
            future.set_running_or_notify_cancel()
            raise
        except BaseException as exc:
            if future.set_running_or_notify_cancel():
                future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and friends also belong to the loop
        else:
            if future.set_running_or_notify_cancel():
                future.set_result(result)
        finally:
            scope = None  # (no cycle through the callback)

    def _spawn(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               name: object, future: concurrent.futures.Future[Any]) -> None:
        """Start ``func`` as a task of the portal's group, from another thread."""
        def spawn() -> None:
            try:
                self._task_group.start_soon(self._call_func, func, args, kwargs, future,
                                            name=None if name is None else str(name))
            except BaseException as exc:
                if future.set_running_or_notify_cancel():
                    future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

        schedule(self._token.loop, future, spawn, context=contextvars.copy_context())

    @overload
    def call(self, func: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    @overload
    def call(self, func: Callable[..., T], *args: Any) -> T: ...

    def call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Call ``func(*args)`` in the loop (awaiting it if it returns an awaitable)
        and return its result; blocks this thread until it is done."""
        return self.start_task_soon(func, *args).result()

    @overload
    def start_task_soon(self, func: Callable[..., Awaitable[T]], *args: Any,
                        name: object = None) -> concurrent.futures.Future[T]: ...

    @overload
    def start_task_soon(self, func: Callable[..., T], *args: Any,
                        name: object = None) -> concurrent.futures.Future[T]: ...

    def start_task_soon(self, func: Callable[..., Any], *args: Any,
                        name: object = None) -> concurrent.futures.Future[Any]:
        """Start ``func(*args)`` as a task in the portal's task group.

        Returns a ``concurrent.futures.Future`` for its result or exception;
        cancelling the future cancels the task (its own cancel scope).
        """
        self._check_running()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._spawn(func, args, {}, name, future)
        return future

    def start_task(self, func: Callable[..., Awaitable[T]], *args: object,
                   name: object = None) -> tuple[concurrent.futures.Future[T], Any]:
        """Start ``func(*args, task_status=...)`` and wait until it calls ``started()``.

        Returns ``(future, value)``: the task's future (as from ``start_task_soon``)
        and the value passed to ``task_status.started()``.  If the task ends without
        calling it, its exception (or RuntimeError) is raised here.
        """
        self._check_running()
        status_future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def task_done(f: concurrent.futures.Future[T]) -> None:
            if status_future.done():
                return
            if f.cancelled():
                status_future.cancel()
            elif (exc := f.exception()) is not None:
                status_future.set_exception(exc)
            else:
                status_future.set_exception(
                    RuntimeError("the task ended without calling task_status.started()"))

        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        future.add_done_callback(task_done)
        self._spawn(func, args, {"task_status": _PortalTaskStatus(status_future)}, name, future)
        return future, status_future.result()

    def wrap_async_context_manager(
            self, cm: AbstractAsyncContextManager[T_co]) -> AbstractContextManager[T_co]:
        """A sync context manager that enters and exits ``cm`` in the loop.

        One task runs both ``__aenter__`` and ``__aexit__`` (so task-bound things,
        such as cancel scopes and task groups, work), pausing in between until the
        sync ``with`` block ends.
        """
        return _BlockingAsyncContextManager(cm, self)

    @overload
    async def call_async(self, func: Callable[..., Awaitable[T]], *args: Any,
                         abandon_on_cancel: bool = False) -> T: ...

    @overload
    async def call_async(self, func: Callable[..., T], *args: Any,
                         abandon_on_cancel: bool = False) -> T: ...

    async def call_async(self, func: Callable[..., Any], *args: Any,
                         abandon_on_cancel: bool = False) -> Any:
        """Run ``func(*args)`` in the portal's loop from a task of *another* loop.

        Cancelling the calling task cancels the call in the portal.  Then, with
        ``abandon_on_cancel=False``, wait for it to finish (its exception, if any,
        is raised; else the cancellation); with ``True``, stop waiting at once and
        ignore the call's outcome.
        """
        self._check_running()
        source = current_token()
        arrived = Event()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        cancelled: concurrent.futures.Future[None] = concurrent.futures.Future()

        async def run_call() -> None:
            with CancelScope() as scope:
                cancelled.add_done_callback(
                    lambda _: _call_soon(self._token, scope.cancel,
                                         "the calling task was cancelled"))
                await self._call_func(func, args, {}, future)

        def spawn_failed(outer: concurrent.futures.Future[None]) -> None:
            # run_call never ran (the portal stopped, its loop finished): say so.
            if not outer.cancelled() and (exc := outer.exception()) is not None:
                if future.set_running_or_notify_cancel():
                    future.set_exception(exc)

        future.add_done_callback(lambda _: _call_soon(source, arrived.set))
        outer: concurrent.futures.Future[None] = concurrent.futures.Future()
        outer.add_done_callback(spawn_failed)
        self._spawn(run_call, (), {}, None, outer)
        try:
            await arrived.wait()
        except asyncio.CancelledError:
            cancelled.cancel()
            if not abandon_on_cancel:
                with CancelScope(shield=True):
                    await arrived.wait()
                if not future.cancelled():
                    future.result()  # raise what the cancelled call raised, if anything
            raise
        return future.result()


class _BlockingAsyncContextManager(AbstractContextManager[T_co], Generic[T_co]):
    """``wrap_async_context_manager()``'s result: one portal task per ``with`` block."""

    _exit_info: tuple[type[BaseException] | None, BaseException | None,
                      TracebackType | None] = (None, None, None)

    def __init__(self, cm: AbstractAsyncContextManager[T_co], portal: BlockingPortal) -> None:
        self._cm = cm
        self._portal = portal
        self._exit_event: Event | None = None

    async def _run(self) -> bool | None:
        self._exit_event = Event()
        try:
            value = await self._cm.__aenter__()
        except BaseException as exc:
            self._enter_future.set_exception(exc)
            raise
        self._enter_future.set_result(value)
        try:
            # Cancellation here (a task group inside cm failed) still exits cm below.
            await self._exit_event.wait()
        finally:
            result = await self._cm.__aexit__(*self._exit_info)
        return result

    def __enter__(self) -> T_co:
        self._enter_future: concurrent.futures.Future[T_co] = concurrent.futures.Future()
        self._exit_future: concurrent.futures.Future[bool | None] = (
            self._portal.start_task_soon(self._run))
        return self._enter_future.result()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> bool | None:
        self._exit_info = (exc_type, exc, tb)
        assert self._exit_event is not None
        self._portal.call(self._exit_event.set)
        return self._exit_future.result()


@contextmanager
def start_blocking_portal(backend: str | None = None,
                          backend_options: dict[str, Any] | None = None, *,
                          name: str | None = None) -> Generator[BlockingPortal, Any, None]:
    """Run a new scopeloop loop in a new thread and yield a portal into it.

    ``backend`` is a scopeloop backend ("asyncio" or "uvloop"; None: the default, as
    for ``scopeloop.run``) and ``backend_options`` the other keyword arguments of
    ``scopeloop.run`` (``debug``).  ``name`` names the thread.  Leaving the block
    stops the portal: tasks still running are waited for, or cancelled if the block
    raised; then the thread is joined.
    """
    from .runner import run  # (the runner imports signal handling: only when needed)

    future: concurrent.futures.Future[BlockingPortal] = concurrent.futures.Future()

    async def run_portal() -> None:
        async with BlockingPortal() as portal:
            if name is None:
                threading.current_thread().name = f"scopeloop-portal-{id(portal):x}"
            future.set_result(portal)
            await portal.sleep_until_stopped()

    def run_thread() -> None:
        if future.set_running_or_notify_cancel():
            try:
                run(run_portal, backend=backend, **(backend_options or {}))
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)

    thread = threading.Thread(target=run_thread, daemon=True, name=name)
    thread.start()
    try:
        cancel_remaining = False
        portal = future.result()
        try:
            yield portal
        except BaseException:
            cancel_remaining = True
            raise
        finally:
            try:
                portal.call(portal.stop, cancel_remaining)
            except (RuntimeError, RunFinishedError):
                pass  # stopped already, or the loop is gone
    finally:
        thread.join()


class BlockingPortalProvider:
    """One shared portal for many threads: the first ``with`` starts it, the last ends it.

    ``with provider as portal:`` from any number of threads; the arguments are those
    of ``start_blocking_portal()``.
    """

    def __init__(self, backend: str | None = None,
                 backend_options: dict[str, Any] | None = None) -> None:
        self.backend = backend
        self.backend_options = backend_options
        self._lock = threading.Lock()
        self._leases = 0
        self._portal: BlockingPortal | None = None
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None

    def __enter__(self) -> BlockingPortal:
        with self._lock:
            if self._portal_cm is None:
                portal_cm = start_blocking_portal(self.backend, self.backend_options)
                self._portal = portal_cm.__enter__()
                self._portal_cm = portal_cm
            self._leases += 1
            assert self._portal is not None
            return self._portal

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        portal_cm: AbstractContextManager[BlockingPortal] | None = None
        with self._lock:
            if self._portal_cm is None or self._leases <= 0:
                raise RuntimeError("BlockingPortalProvider exited more often than entered")
            self._leases -= 1
            if not self._leases:
                portal_cm, self._portal_cm, self._portal = self._portal_cm, None, None
        if portal_cm is not None:
            portal_cm.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<BlockingPortalProvider backend={self.backend!r} leases={self._leases}>"

