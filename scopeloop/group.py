"""Task groups (AnyIO's API, Trio's semantics) built on the scope tree.

Children are spawned *into* the group's cancel scope: cancelling that scope reaches
them through the same walk that reaches the host, and shields inside them hold.
A child that fails cancels the scope from its done callback, which is queued by
the failing step: every other task's next checkpoint raises.  (Trio cancels within
the failing step, so a task woken by that step already reads ``cancel_called``.
Neither hook that runs there is cheap: a wrapper coroutine per child doubles the
cost of cancelling many children through GC pressure, and a ``call_soon`` override
on uvloop slows every wake-up.  start() closes the one gap it can see: see
``_StartStatus._outcome``.)  Waiting for the
children in ``__aexit__`` (and for ``started()`` in ``start()``) is exempt from
scope cancellation (``task.exempt_wait``), so it does not re-interrupt the wait
(and cannot spin); native cancellation still gets through, as through a shield.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from types import CoroutineType, TracebackType
from contextvars import Context
from typing import Any, Literal, Protocol, TypeVar, overload

from ._asyncgen import asyncgen_hint
from .handle import TaskHandle
from .lowlevel import cancel_shielded_checkpoint
from .scope import (
    CancelScope,
    adopt,
    close_children,
    enter_for,
    exit_for,
    open_children,
    record_caught_with_errors,
    transfer,
    wrong_task_message,
)
from .task import (
    _NO_CONTEXT,
    Task,
    _current_task,
    cancelled_region,
    create_task_in,
    current_scope_task,
    exempt_wait,
    is_scope_cancel,
    make_task,
    own_scope_bounds,
)

__all__ = ("TaskGroup", "TaskStatus", "TASK_STATUS_IGNORED", "create_task_group")

T = TypeVar("T")
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


def callable_name(func: Any) -> str | None:
    """A child's default name: ``module.qualname`` of its function, as in Trio and AnyIO."""
    while type(func) is functools.partial:
        func = func.func
    return _dotted(getattr(func, "__module__", None), getattr(func, "__qualname__", None))


def coroutine_name(coro: Any) -> str | None:
    """``callable_name()`` for a coroutine object: its module is its frame's."""
    frame = getattr(coro, "cr_frame", None)
    module = frame.f_globals.get("__name__") if frame is not None else None
    return _dotted(module, getattr(coro, "__qualname__", None))


def _dotted(module: str | None, qualname: str | None) -> str | None:
    if qualname is None:
        return None
    return f"{module}.{qualname}" if module else qualname


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
        # AnyIO's wording, which code and tests match; the how-to-fix is a note.
        error = TypeError(f"Expected {getattr(func, '__qualname__', func)!s}() to return "
                          f"a coroutine, but the return value ({coro!r}) is not a "
                          f"coroutine object")
        error.add_note(f"{what} expects an async function: define it with 'async def' "
                       f"(pass the function and its arguments, not a call result)")
        raise error
    return coro


# The code of the factories asyncio.create_eager_task_factory() makes (3.12+).
_STDLIB_EAGER_CODE = getattr(getattr(asyncio, "eager_task_factory", None), "__code__", None)


def _spawn_into(scope: CancelScope, coro: Coroutine[Any, Any, Any], name: Any,
                context: Context | None = None, lazy: bool = False) -> Task:
    """Create the task that runs ``coro`` for a group, as a child of ``scope``.

    ``lazy``: not eagerly, even under the stdlib's eager task factory (as AnyIO's
    groups spawn, which the AnyIO bridge's groups follow).
    """
    assert scope._host is not None
    loop: Any = scope._host._loop
    if name is not None and type(name) is not str:
        name = str(name)
    if getattr(loop, "_no_task_factory", False) or (
            lazy and getattr(loop.get_task_factory(), "__code__", None) is _STDLIB_EAGER_CODE):
        # The loop's own create_task would build the same Task; skipping the
        # Python-level method call is measurable when spawning thousands.
        task = make_task(coro, loop, name, context)
        adopt(task, scope)
        return task
    # A task factory may start the task eagerly: it is told the scope first.
    try:
        made = create_task_in(loop, scope, coro, name, context)
    except BaseException:
        # Nobody will run the coroutine now: close it (a factory may have started
        # it), so it neither warns "never awaited" nor keeps its frame alive.
        coro.close()
        raise
    if not isinstance(made, Task):
        made.cancel()
        raise RuntimeError("the loop's task factory does not create scopeloop Tasks, so "
                           "task groups cannot track their children; use "
                           "scopeloop.eager_task_factory or no task factory")
    # An eager task has run its first step already: it may have entered scopes of
    # its own (they go under `scope`) or been moved into a group by started()
    # (it stays there).
    root = own_scope_bounds(made)[1]
    if root is None or root is scope:
        transfer(made, scope)
    return made


class TaskGroup:
    """A structured group of child tasks; leaves only when all children are done.

    A failing child cancels the group; errors are raised together as a
    BaseExceptionGroup when the group exits.  Use ``create_task_group()``.
    """

    # What the spawning methods return (the AnyIO bridge's groups return handles
    # that are AnyIO's in what they raise and report).
    _handle: type[TaskHandle[Any, Any]] = TaskHandle
    # True: children are not started eagerly under the stdlib's eager task factory.
    _lazy_children = False

    def __init__(self) -> None:
        self.cancel_scope: CancelScope = _GroupScope()
        self._host: Task | None = None
        self._active = False
        self._exited = False
        # A dict, not a set: spawn order is memory order (see task.deliver_below).
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
            raise RuntimeError("TaskGroup cannot be entered more than once; "
                               "create a new one for each 'async with' block")
        self._host = current_scope_task("TaskGroup")
        self.cancel_scope.__enter__()
        open_children(self.cancel_scope, self._tasks)
        self._active = True
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool:
        scope = self.cancel_scope
        if not self._active:
            raise RuntimeError("this TaskGroup is not active: it was never entered "
                               "or has already exited." + asyncgen_hint("task group", scope))
        if asyncio.current_task() is not self._host:
            assert self._host is not None
            raise RuntimeError(wrong_task_message("TaskGroup", "async with create_task_group()",
                                                  self._host) + asyncgen_hint("task group", scope))
        if exc is not None:
            scope.cancel()
            if not isinstance(exc, asyncio.CancelledError):
                self._errors.append(exc)
        # As in asyncio.TaskGroup, the first cancellation of the host is the one
        # re-raised; later native ones are still counted by cancelling().
        cancelled = exc if isinstance(exc, asyncio.CancelledError) else None
        if self._tasks or self._pending_starts:
            host = self._host
            assert host is not None
            while self._tasks or self._pending_starts:
                # Exempt from scope cancellation (the children get it through the
                # scope); only native requests interrupt the wait: forward them
                # to the children as scope cancellation, keep waiting, re-raise after.
                self._waiter = host._loop.create_future()
                exempt_wait(host, self._waiter)
                try:
                    await self._waiter
                except asyncio.CancelledError as cancel:
                    if cancelled is None:
                        cancelled = cancel
                    scope.cancel()
            self._waiter = None
        else:
            # With nothing to wait for, the exit is still a schedule point, as in
            # Trio (not a cancel point: scope cancellation waits for the next one).
            try:
                await cancel_shielded_checkpoint()
            except asyncio.CancelledError as cancel:  # native: re-raised below
                if cancelled is None:
                    cancelled = cancel
        self._active = False
        self._exited = True
        close_children(scope)

        # Only the group raised keeps the errors (whoever holds `tg` keeps none alive).
        errors, self._errors = self._errors, []
        raising: BaseException | None = None
        if errors:
            raising = BaseExceptionGroup("unhandled errors in a TaskGroup", errors)
            # The body's error is in the group: as its __context__ it would be
            # printed twice (asyncio.TaskGroup and AnyIO suppress it too).
            raising.__suppress_context__ = True
        elif cancelled is not None:
            raising = cancelled
        elif self._child_cancelled:
            # A child ended with the region's cancellation: pass it on for the
            # cancelled scope (ours or an enclosing one) to catch.
            region = self._host._cancelling_scope()  # type: ignore[union-attr]
            if region is not None:
                raising = asyncio.CancelledError(region._cancel_message())
        self._host = None  # (as the scope does: an exited group keeps no task alive)
        if scope.__exit__(type(raising) if raising else None, raising,
                          raising.__traceback__ if raising else None):
            return True
        if errors and scope._cancel_called and (self._child_cancelled
                                                      or is_scope_cancel(exc)):
            # As in Trio, the scope that catches a region's cancellation records
            # it even when errors leave through it: a child (or the body) that
            # ended with that cancellation was one.  (Trio's error group carried
            # it out of the body; ours leaves cancellations out, DESIGN §3.3.)
            record_caught_with_errors(scope)
        if raising is None or raising is exc:
            return False
        try:
            raise raising
        finally:
            # Break the cycle exception -> traceback -> this frame -> exception.
            raising = exc = cancelled = tb = None
            errors = []

    # -- spawning -------------------------------------------------------------

    def _check_open(self, what: str) -> asyncio.AbstractEventLoop:
        if not self._active:
            state = "has already exited" if self._exited else "has not been entered yet"
            message = (f"{what}: this TaskGroup {state}; use it inside its "
                       f"'async with create_task_group() as tg:' block")
            if not what.startswith("call_"):  # a task, not a callback
                # AnyIO's sentence first: code and tests match it.
                message = "This task group is not active; no new tasks can be started: " + message
            raise RuntimeError(message)
        assert self._host is not None
        return self._host._loop

    def start_soon(self, func: Callable[..., Awaitable[T]], *args: Any,
                   name: object = None) -> TaskHandle[T, Any]:
        """Start ``func(*args)`` as a child task; return its handle."""
        if not self._active:
            self._check_open("start_soon()")
        coro = func(*args) if callable(func) else _NOT_CALLED
        if type(coro) is not CoroutineType:
            coro = _make_coroutine(func, args, "start_soon()", _result=coro)
        if name is None:
            name = callable_name(func)
        task = _spawn_into(self.cancel_scope, coro, name, None, self._lazy_children)
        task.add_done_callback(self._on_child_done, context=_NO_CONTEXT)
        return self._handle(task, coro)

    def create_task(self, coro: Coroutine[Any, Any, T], *, name: object = None,
                    context: Context | None = None) -> TaskHandle[T, Any]:
        """Run the coroutine object ``coro`` as a child task; return its handle.

        ``context``: the contextvars.Context the task runs in (a copy of the
        current one by default), as for ``asyncio.create_task``.
        """
        if not self._active:
            self._check_open("create_task()")
        if type(coro) is not CoroutineType and not asyncio.iscoroutine(coro):
            # AnyIO's wording, which code and tests match; the how-to-fix is a note.
            error = TypeError(f"expected a coroutine, got {type(coro).__qualname__}")
            error.add_note("create_task() takes a coroutine object: call the async "
                           "function (tg.create_task(fn(arg))), or use "
                           "tg.start_soon(fn, arg)" if callable(coro) else
                           "create_task() takes a coroutine object, such as fn(arg) "
                           "for an async function fn")
            raise error
        task = _spawn_into(self.cancel_scope, coro,
                           name if name is not None else coroutine_name(coro),
                           context, self._lazy_children)
        task.add_done_callback(self._on_child_done, context=_NO_CONTEXT)
        return self._handle(task, coro)

    def cancel(self, reason: str | None = None) -> None:
        """Cancel the group's scope: the same as ``tg.cancel_scope.cancel(reason)``."""
        self.cancel_scope.cancel(reason)

    @overload
    async def start(self, func: Callable[..., Awaitable[Any]], *args: Any,
                    name: object = None, return_handle: Literal[False] = ...) -> Any: ...

    @overload
    async def start(self, func: Callable[..., Awaitable[T]], *args: Any,
                    name: object = None, return_handle: Literal[True]
                    ) -> TaskHandle[T, Any]: ...

    async def start(self, func: Callable[..., Awaitable[Any]], *args: Any,
                    name: object = None, return_handle: bool = False) -> Any:
        """Start ``func(*args, task_status=...)`` and wait until it calls ``started()``.

        Returns the value passed to ``task_status.started()``, or with
        ``return_handle=True`` the task's handle, which holds that value as
        ``start_value``.  Until then the task
        runs under the caller (the caller's cancellation cancels it); afterwards it
        belongs to this group.  The group does not exit while a start() into it
        is pending.
        """
        if not self._active:
            self._check_open("start()")
        host = _current_task()
        if type(host) is not Task:
            host = current_scope_task("TaskGroup.start()")
        # (_StartStatus is built without a Python-level __init__ call.)
        status = _new_status()
        status._group = self
        status._caller = host
        status._starter = starter = _new_scope()
        status._task = status._error = status._value = status._ready = None
        status._called = status._moved = False
        coro = func(*args, task_status=status) if callable(func) else _NOT_CALLED
        if type(coro) is not CoroutineType:
            coro = _make_coroutine(func, args, "start()", _result=coro, task_status=status)
        self._pending_starts += 1
        try:
            # The wait is written out here rather than in a helper coroutine: a
            # coroutine per start() is a measurable part of the handshake.
            # The caller runs no code of its own inside the starter, so it is
            # entered from outside, without CancelScope.__enter__'s checks.
            enter_for(starter, host)
            ready = status._ready = host._loop.create_future()
            try:
                task = status._task = _spawn_into(
                    starter, coro, name if name is not None else callable_name(func),
                    None, self._lazy_children)
            except BaseException:
                exit_for(starter, host)
                raise
            if not status._moved:  # (an eager task may have started in its first step)
                task.add_done_callback(status._child_done, context=_NO_CONTEXT)
                if status._called:  # started() came before the task (see started())
                    status._called = False
                    status.started(status._value)
            native: asyncio.CancelledError | None = None
            while not ready.done():
                exempt_wait(host, ready)
                try:
                    await ready
                except asyncio.CancelledError as cancel:
                    if native is None:
                        native = cancel
                    ready = status._forward_native()
            if native is None and status._moved:
                # The common outcome, written out (see _outcome).
                exit_for(starter, host)
                if task.done():
                    self._child_done(task)
                value = status._value
            else:
                value = status._outcome(native)
            if return_handle:
                return self._handle(task, coro, value)
            return value
        finally:
            self._pending_starts -= 1
            if self._waiter is not None:  # (only while __aexit__ waits)
                self._wake_if_idle()

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
        if self._tasks.pop(task, _NOT_CALLED) is _NOT_CALLED:
            return  # already reported (see _StartStatus._outcome)
        if task.cancelled():
            scope = self.cancel_scope
            if scope._cancel_called:
                self._child_cancelled = True
            elif cancelled_region(scope._parent) is not None:
                # Ended by an enclosing scope's cancellation: as in Trio, a child
                # that ends Cancelled cancels its group.  A child's own native
                # cancel (task.cancel(), no scope involved) keeps its stock
                # meaning instead, as in asyncio.TaskGroup: the siblings go on.
                self._child_cancelled = True
                scope.cancel()
        else:
            exc = task.exception()  # (retrieved: asyncio logs no "never retrieved")
            if exc is not None:
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    # asyncio's Task re-raised it out of the loop from the failing
                    # step, as for any task: reported again, it would surface twice.
                    self.cancel_scope.cancel()
                else:
                    self._child_failed(exc)
        if not self._tasks and not self._pending_starts:
            self._wake_if_idle()

    def _wake_if_idle(self) -> None:
        waiter = self._waiter
        if (not self._tasks and not self._pending_starts
                and waiter is not None and not waiter.done()):
            waiter.set_result(None)




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


class _StarterScope(CancelScope):
    """The scope a ``start()`` call holds its task in until ``started()``.

    Its own class so that diagnostics can tell a pending start() from a task group
    by what the scope is, not by the name of a function on the stack.
    """


# A starter scope (no deadline, no shield) without a Python-level __init__ call.
_new_scope = functools.partial(object.__new__, _StarterScope)


class _StartStatus:
    """The ``task_status`` of a task launched by ``TaskGroup.start()``.

    Until ``started()`` the task runs in a scope of its own (the *starter*) that the
    caller of ``start()`` is in, so the caller's cancellation reaches it; then it
    moves into the group.
    """

    # Slots, all set by start() (which builds the status without a Python-level
    # __init__ call): class-level defaults would keep 3.12+ from specialising the
    # reads and writes of started() and start(), which are most of the handshake.
    __slots__ = ("_group", "_caller", "_starter", "_task", "_called", "_moved",
                 "_error", "_value", "_ready")
    _group: TaskGroup
    _caller: Task
    _starter: _StarterScope
    _task: Task | None
    _called: bool
    _moved: bool
    _error: BaseException | None
    _value: Any
    _ready: asyncio.Future[None] | None

    def started(self, value: Any = None) -> None:
        """Report readiness: ``start()`` returns ``value``; the task joins the group."""
        if self._called:
            raise RuntimeError("called 'started' twice on the same task status: "
                               "task_status.started() was already called for this task; "
                               "call it exactly once")
        self._called = True
        task = self._task
        if task is None:
            # An eager task runs its first step inside create_task(), before start()
            # has been handed the task: it is the one running now.
            task = asyncio.current_task()  # type: ignore[assignment]
            if task is self._caller:
                # The task does not exist yet: a plain function given to start()
                # called started() before returning its coroutine.  start() moves
                # the task in as soon as it is made.
                self._value = value
                return
            if not isinstance(task, Task):
                return
        if task.done():
            return
        group, starter = self._group, self._starter
        self._value = value
        if cancelled_region(starter) is not None or not group._active:
            # The caller of start() is being cancelled: as in Trio, the task stays
            # with the caller (moved into a group that may not be cancelled, its
            # propagating cancellation would find no scope to catch it) and
            # start() waits for it to end.  If it returns normally, start()
            # returns ``value`` all the same (Trio since its PR #1696); if it
            # raises, that propagates.  (A pending start() keeps the group open:
            # it is closed only for a task_status used after start() returned.)
            return
        self._moved = True
        task.remove_done_callback(self._child_done)
        task.add_done_callback(group._on_child_done, context=_NO_CONTEXT)
        transfer(task, group.cancel_scope, starter)  # (group._tasks is its children)
        ready = self._ready
        if ready is not None and not ready.done():
            ready.set_result(None)

    def _forward_native(self) -> asyncio.Future[None]:
        """A native cancel of the caller interrupted the wait: cancel the task too.

        Returns the future to wait on next (done if there is nothing to wait for).
        """
        self._starter.cancel()
        ready = self._ready
        assert ready is not None and self._task is not None
        if ready.cancelled():  # (else it started or ended before the cancel reached us)
            ready = self._ready = self._caller._loop.create_future()
            if self._task.done() or self._moved:
                ready.set_result(None)
        return ready

    def _outcome(self, native: asyncio.CancelledError | None) -> Any:
        """What ``start()`` returns or raises once the wait is over."""
        exit_for(self._starter, self._caller)
        if native is not None:
            raise native
        if self._moved:
            task = self._task
            if task is not None and task.done():
                # It called started() and ended in the same step: its done callback
                # is still queued, behind our wake-up.  Report its end first, so
                # that (as in Trio) a failure has cancelled the group before the
                # caller carries on with the value.
                self._group._child_done(task)
            return self._value
        if self._error is not None:
            raise self._error
        assert self._task is not None
        if self._task.cancelled():
            # It ended by a cancellation without moving: that propagates out of
            # start(), for the scope that caused it.
            region = self._caller._cancelling_scope()
            if region is not None:
                raise asyncio.CancelledError(region._cancel_message())
            raise asyncio.CancelledError("the task started by start() was cancelled")
        if self._called:
            return self._value  # started() in a cancelled region, then returned
        # (Also when it caught a cancellation and returned: as in Trio.)
        raise RuntimeError(f"Child exited without calling task_status.started(): the "
                           f"task {self._task.get_name()!r} started by start() finished "
                           f"first")

    def _child_done(self, task: Task) -> None:
        # (Once started, the task reports to the group instead.)
        if not task.cancelled():
            self._error = task.exception()
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)


_new_status = functools.partial(object.__new__, _StartStatus)


def create_task_group() -> TaskGroup:
    """Create a task group; use it with ``async with``."""
    return TaskGroup()

