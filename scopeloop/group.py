"""Task groups (AnyIO's API, Trio's semantics) built on the scope tree.

Children are spawned *into* the group's cancel scope: cancelling that scope reaches
them through the same walk that reaches the host, and shields inside them hold.
A child that fails cancels the scope from its done callback, which is queued by
the failing step: every other task's next checkpoint raises.  Waiting for the children in ``__aexit__`` happens behind an internal
shield, so scope cancellation does not re-interrupt the wait (and cannot spin);
native cancellation still gets through, as it does through every shield.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from types import CoroutineType, TracebackType
from typing import Any, Protocol, TypeVar

from .scope import CancelScope
from .task import _NO_CONTEXT, Task, current_scope_task

__all__ = ("TaskGroup", "TaskStatus", "TASK_STATUS_IGNORED", "create_task_group")

T_contra = TypeVar("T_contra", contravariant=True)


class TaskStatus(Protocol[T_contra]):
    """What ``TaskGroup.start()`` passes to the task as ``task_status``."""

    def started(self, value: T_contra | None = None) -> None:
        """Report that the task is ready; ``start()`` returns ``value``."""


class _IgnoredTaskStatus:
    def started(self, value: object = None) -> None:
        pass

    def __repr__(self) -> str:
        return "TASK_STATUS_IGNORED"


TASK_STATUS_IGNORED: Any = _IgnoredTaskStatus()


_NOT_CALLED: Any = object()


def _make_coroutine(func: Callable[..., Any], args: tuple[Any, ...], what: str,
                    _result: Any = _NOT_CALLED, **kwargs: Any) -> Coroutine[Any, Any, Any]:
    """Call ``func`` (unless ``_result`` is that call's result) and check it is async."""
    if not callable(func):
        if asyncio.iscoroutine(func):
            func.close()  # nobody will await it: spare the "never awaited" warning
            raise TypeError(f"{what} expects an async function, but got a coroutine "
                            f"object; pass the function and its arguments "
                            f"(fn, arg), not a call (fn(arg))")
        raise TypeError(f"{what} expects an async function, not {type(func).__name__}")
    coro = func(*args, **kwargs) if _result is _NOT_CALLED else _result
    if not asyncio.iscoroutine(coro):
        if hasattr(coro, "close"):
            coro.close()
        raise TypeError(f"{what} expects an async function, but {func!r} returned "
                        f"{type(coro).__name__}; define it with 'async def' "
                        f"(pass the function and its arguments, not a call result)")
    return coro


def _create_child(loop: asyncio.AbstractEventLoop, scope: CancelScope,
                  coro: Coroutine[Any, Any, Any], name: Any) -> Task:
    """Create the task that runs ``coro`` for a group, in ``scope``."""
    name = None if name is None else str(name)
    if getattr(loop, "_no_task_factory", False):
        # The loop's own create_task would build the same Task; skipping the
        # Python-level method call is measurable when spawning thousands.
        task: asyncio.Task[Any] = Task(coro, loop=loop, name=name)
    else:
        # A task factory may start the task eagerly: tell it the scope first.
        loop._spawn_scope = scope  # type: ignore[attr-defined]
        try:
            task = loop.create_task(coro, name=name)
        finally:
            loop._spawn_scope = None  # type: ignore[attr-defined]
    if not isinstance(task, Task):
        task.cancel()
        raise RuntimeError("the loop's task factory does not create scopeloop Tasks, so "
                           "task groups cannot track their children; use "
                           "scopeloop.eager_task_factory or no task factory")
    return task


def _place(task: Task, scope: CancelScope) -> None:
    """Put a new child task into ``scope``."""
    if task._scope is None:
        task._scope = scope
        if scope._effectively_cancelled():
            task._deliver_scope_cancel()  # it starts, and raises at its first checkpoint
    else:
        # An eager task already ran its first step outside `scope`: move its own
        # scopes under it.
        _reparent(task, scope)
    scope._spawned[task] = None  # type: ignore[index]


class TaskGroup:
    """A structured group of child tasks; leaves only when all children are done.

    A failing child cancels the group; errors are raised together as a
    BaseExceptionGroup when the group exits.  Use ``create_task_group()``.
    """

    def __init__(self) -> None:
        self.cancel_scope: CancelScope = _GroupScope()
        self._host: Task | None = None
        self._active = False
        self._exited = False
        # A dict, not a set: spawn order is memory order (see scope._deliver_below).
        self._tasks: dict[Task, None] = {}
        self._errors: list[BaseException] = []
        self._child_cancelled = False
        # start() calls into this group still waiting for started(): like Trio's
        # nursery, the group stays open for them, as their task may yet join it.
        self._pending_starts = 0
        self._waiter: asyncio.Future[None] | None = None
        # Bound once: a done callback per child, with no bound method made per child.
        self._on_child_done = self._child_done

    async def __aenter__(self) -> TaskGroup:
        if self._active or self._exited:
            raise RuntimeError("this TaskGroup has already been entered; "
                               "create a new one for each 'async with' block")
        self._host = current_scope_task("TaskGroup")
        self.cancel_scope.__enter__()
        self.cancel_scope._spawned = self._tasks
        self._active = True
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool:
        scope = self.cancel_scope
        if not self._active:
            raise RuntimeError("this TaskGroup is not active: it was never entered "
                               "or has already exited")
        if asyncio.current_task() is not self._host:
            raise RuntimeError("a TaskGroup must be exited in the task that entered it")
        if exc is not None:
            scope.cancel()
            if not isinstance(exc, asyncio.CancelledError):
                self._errors.append(exc)
        # As in asyncio.TaskGroup, the first cancellation of the host is the one
        # re-raised; later native ones are still counted by cancelling().
        cancelled = exc if isinstance(exc, asyncio.CancelledError) else None
        if self._tasks or self._pending_starts:
            loop = asyncio.get_running_loop()
            with CancelScope(shield=True):
                while self._tasks or self._pending_starts:
                    self._waiter = loop.create_future()
                    try:
                        await self._waiter
                    except asyncio.CancelledError as cancel:
                        # Only native requests pass the shield: forward them to the
                        # children as scope cancellation, keep waiting, re-raise after.
                        if cancelled is None:
                            cancelled = cancel
                        scope.cancel()
            self._waiter = None
        self._active = False
        self._exited = True
        scope._spawned = None

        raising: BaseException | None = None
        if self._errors:
            raising = BaseExceptionGroup("unhandled errors in a TaskGroup", self._errors)
        elif cancelled is not None:
            raising = cancelled
        elif self._child_cancelled:
            # A child ended with the region's cancellation: pass it on for the
            # cancelled scope (ours or an enclosing one) to catch.
            region = self._host._cancelling_scope()  # type: ignore[union-attr]
            if region is not None:
                raising = asyncio.CancelledError(region._cancel_message())
        if scope.__exit__(type(raising) if raising else None, raising,
                          raising.__traceback__ if raising else None):
            return True
        if raising is None or raising is exc:
            return False
        raise raising

    # -- spawning -------------------------------------------------------------

    def _check_open(self, what: str) -> asyncio.AbstractEventLoop:
        if not self._active:
            state = "has already exited" if self._exited else "has not been entered yet"
            raise RuntimeError(f"{what}: this TaskGroup {state}; use it inside its "
                               f"'async with create_task_group() as tg:' block")
        assert self._host is not None
        return self._host._loop

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any,
                   name: object = None) -> None:
        """Start ``func(*args)`` as a child task."""
        if not self._active:
            self._check_open("start_soon()")
        coro = func(*args) if callable(func) else _NOT_CALLED
        if type(coro) is not CoroutineType:
            coro = _make_coroutine(func, args, "start_soon()", _result=coro)
        scope = self.cancel_scope
        task = _create_child(self._host._loop, scope, coro,  # type: ignore[union-attr]
                             name or getattr(func, "__qualname__", None))
        _place(task, scope)
        task.add_done_callback(self._on_child_done, context=_NO_CONTEXT)

    async def start(self, func: Callable[..., Awaitable[Any]], *args: Any,
                    name: object = None) -> Any:
        """Start ``func(*args, task_status=...)`` and wait until it calls ``started()``.

        Returns the value passed to ``task_status.started()``.  Until then the task
        runs under the caller (the caller's cancellation cancels it); afterwards it
        belongs to this group.  The group does not exit while a start() into it
        is pending.
        """
        loop = self._check_open("start()")
        host = current_scope_task("TaskGroup.start()")
        status = _StartStatus(self, host)
        coro = _make_coroutine(func, args, "start()", task_status=status)
        return await status._run(loop, coro, name or getattr(func, "__qualname__", None))

    # -- callbacks owned by the group -------------------------------------------

    def call_soon(self, callback: Callable[..., object], *args: Any,
                  context: Any = None) -> asyncio.Handle:
        """Schedule ``callback(*args)`` like ``loop.call_soon``, owned by this group.

        The group cancels the handle when its cancel scope is cancelled or when it
        exits, so the callback never runs after its owner is gone: the structured
        alternative to ``loop.call_soon`` in a ``finally`` block.  Called on a
        group whose scope is already cancelled, it returns a cancelled handle.
        """
        loop = self._check_open("call_soon()")
        return self.cancel_scope._own(  # type: ignore[attr-defined,no-any-return]
            loop.call_soon(callback, *args, context=context))

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any,
                   context: Any = None) -> asyncio.TimerHandle:
        """Schedule ``callback(*args)`` in ``delay`` seconds, owned by this group.

        Like ``loop.call_later``, except that the group cancels the handle when its
        cancel scope is cancelled or when it exits (see ``call_soon``).
        """
        loop = self._check_open("call_later()")
        return self.cancel_scope._own(  # type: ignore[attr-defined,no-any-return]
            loop.call_later(delay, callback, *args, context=context))

    # -- children -------------------------------------------------------------

    def _child_failed(self, exc: BaseException) -> None:
        self._errors.append(exc)
        self.cancel_scope.cancel()

    def _child_done(self, task: Task) -> None:
        # A failure is seen here, one loop iteration after the failing step, as in
        # asyncio.TaskGroup and AnyIO: no wrapper coroutine per child (that cost a
        # coroutine, a frame per step and per traceback, and GC pressure when many
        # children end together).  Every task's next checkpoint after the failure
        # still raises, since this callback was queued before that checkpoint.
        self._tasks.pop(task, None)
        if task.cancelled():
            self._child_cancelled = True
        else:
            exc = task.exception()  # (retrieved: asyncio logs no "never retrieved")
            if exc is not None:
                self._child_failed(exc)
        if not self._tasks and not self._pending_starts:
            self._wake_if_idle()

    def _wake_if_idle(self) -> None:
        waiter = self._waiter
        if (not self._tasks and not self._pending_starts
                and waiter is not None and not waiter.done()):
            waiter.set_result(None)

    def _adopt(self, task: Task) -> None:
        """Take over a task that ``start()`` launched and that is now started."""
        self._tasks[task] = None
        task.add_done_callback(self._on_child_done, context=_NO_CONTEXT)
        _reparent(task, self.cancel_scope)


class _GroupScope(CancelScope):
    """A task group's cancel scope: cancelling or leaving it cancels the group's
    callbacks (``TaskGroup.call_soon``/``call_later``).

    Hooking the scope rather than the group catches every way it gets cancelled
    (``cancel()``, its deadline, a failing child, the host's error) and its exit,
    without touching CancelScope itself.
    """

    # Weak: a handle that has run and that nobody holds needs no cancelling.
    # Created on first use: most groups never own a callback.
    _handles: weakref.WeakSet[asyncio.Handle] | None = None

    def _own(self, handle: asyncio.Handle) -> asyncio.Handle:
        if self._cancel_called:
            handle.cancel()
        else:
            if self._handles is None:
                self._handles = weakref.WeakSet()
            self._handles.add(handle)
        return handle

    def _cancel_handles(self) -> None:
        if not self._handles:
            return
        handles = list(self._handles)
        self._handles.clear()
        for handle in handles:
            handle.cancel()

    def cancel(self, reason: str | None = None) -> None:
        super().cancel(reason)
        self._cancel_handles()

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> bool:
        self._cancel_handles()
        return super().__exit__(exc_type, exc, tb)


def _reparent(task: Task, root: CancelScope) -> None:
    """Move ``task`` (and its own scopes) under ``root``."""
    outermost = None
    scope = task._scope
    while scope is not None and scope._host is task:
        outermost = scope
        scope = scope._parent
    if outermost is None:
        task._scope = root
    else:
        outermost._parent = root
    task._deliver_scope_cancel()


class _StartStatus:
    """The ``task_status`` of a task launched by ``TaskGroup.start()``."""

    def __init__(self, group: TaskGroup, caller: Task) -> None:
        self._group = group
        self._caller = caller
        self._starter = CancelScope()
        self._task: Task | None = None
        self._called = False
        self._moved = False
        self._error: BaseException | None = None
        self._value: Any = None
        self._ready: asyncio.Future[None] | None = None

    def started(self, value: Any = None) -> None:
        """Report readiness: ``start()`` returns ``value``; the task joins the group."""
        if self._called:
            raise RuntimeError("task_status.started() was already called for this task; "
                               "call it exactly once")
        self._called = True
        task = self._task
        if task is None:
            # An eager task runs its first step inside create_task(), before start()
            # has been handed the task: it is the one running now.
            task = asyncio.current_task()  # type: ignore[assignment]
            if not isinstance(task, Task):
                return
        if task.done():
            return
        if self._starter._effectively_cancelled() or not self._group._active:
            # The caller of start() is being cancelled (or the group closed): the
            # start is void, the task stays with the caller and is cancelled there.
            return
        self._value = value
        self._moved = True
        self._starter._spawned.pop(task, None)  # type: ignore[union-attr]
        self._group._adopt(task)
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    async def _run(self, loop: asyncio.AbstractEventLoop,
                   coro: Coroutine[Any, Any, Any], name: Any) -> Any:
        group = self._group
        group._pending_starts += 1
        try:
            return await self._start(loop, coro, name)
        finally:
            group._pending_starts -= 1
            group._wake_if_idle()

    async def _start(self, loop: asyncio.AbstractEventLoop,
                     coro: Coroutine[Any, Any, Any], name: Any) -> Any:
        starter = self._starter
        native: asyncio.CancelledError | None = None
        with starter:
            starter._spawned = {}
            self._ready = loop.create_future()
            task = self._task = _create_child(loop, starter, coro, name)
            if not self._moved:  # (an eager task may have started in its first step)
                _place(task, starter)
            task.add_done_callback(self._child_done, context=_NO_CONTEXT)
            with CancelScope(shield=True):
                # Waits behind a shield: scope cancellation of the caller reaches
                # the child through `starter`; a native one is forwarded to it.
                while not self._ready.done():
                    try:
                        await self._ready
                    except asyncio.CancelledError as cancel:
                        if native is None:
                            native = cancel
                        starter.cancel()
                        if not self._ready.cancelled():
                            break  # started or finished before the cancel reached us
                        # The cancel went to the future we were waiting on.
                        self._ready = loop.create_future()
                        if task.done() or self._moved:
                            self._ready.set_result(None)
            starter._spawned = None
            if native is not None:
                raise native
            if self._moved:
                return self._value
            if self._error is not None:
                raise self._error
            if self._task.cancelled() or self._caller._cancelling_scope() is not None:
                region = self._caller._cancelling_scope()
                if region is not None:
                    raise asyncio.CancelledError(region._cancel_message())
                raise asyncio.CancelledError("the task started by start() was cancelled")
            raise RuntimeError(f"the task {self._task.get_name()!r} started by start() "
                               f"finished without calling task_status.started()")
        raise AssertionError("unreachable")  # pragma: no cover

    def _child_done(self, task: Task) -> None:
        if self._moved:
            return  # the group registered its own callback when it adopted the task
        if not task.cancelled():
            self._error = task.exception()
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)


def create_task_group() -> TaskGroup:
    """Create a task group; use it with ``async with``."""
    return TaskGroup()
