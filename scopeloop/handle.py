"""TaskHandle: what a task group's spawning methods return (AnyIO 4.14's API).

A handle is a view of the child's own scopeloop Task, which already holds the
outcome: awaiting the handle waits for the task and returns its result, or raises
TaskFailed (TaskCancelled for a cancelled task) chained to what ended it.  The group
still sees every failure, as for any child; the handle only lets a caller look too.

``cancel()`` cancels the one task as a cancel scope around all of its code would:
level-triggered, and shields inside the task hold.  That scope is put in place when
``cancel()`` is first called, under the task's own scopes and above the scope it
was spawned into, so a handle nobody cancels costs no scope.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

from ._waitqueue import redeliver
from .lowlevel import checkpoint
from .scope import CancelScope, _check_reason, interpose
from .task import _NO_CONTEXT, Task

__all__ = ("TaskHandle", "TaskCancelled", "TaskFailed", "TaskNotFinished")

T_co = TypeVar("T_co", covariant=True)
T_startval_co = TypeVar("T_startval_co", covariant=True)


class TaskFailed(Exception):
    """The task of a TaskHandle raised; what it raised is this error's ``__cause__``."""


class TaskCancelled(TaskFailed):
    """The task of a TaskHandle was cancelled (or is being cancelled)."""


class TaskNotFinished(Exception):
    """A TaskHandle's outcome was read before its task finished."""


class _Status(enum.Enum):
    """The state of a TaskHandle: PENDING (or CANCELLING), then FINISHED, CANCELLED
    or FAILED for good."""

    PENDING = enum.auto()
    FINISHED = enum.auto()
    CANCELLING = enum.auto()
    CANCELLED = enum.auto()
    FAILED = enum.auto()


_Status.__name__ = "Status"
_Status.__qualname__ = "TaskHandle.Status"  # it is reached as TaskHandle.Status


class _HandleScope(CancelScope):
    """The scope ``TaskHandle.cancel()`` puts around everything its task runs.

    Nobody enters or exits it: the task's cancellation ends the task, and the
    handle reports CANCELLED.
    """


_NO_START_VALUE: Any = object()


class TaskHandle(Generic[T_co, T_startval_co]):
    """A child task of a task group, seen from outside: await it for its result.

    Returned by ``TaskGroup.create_task()``, ``start_soon()`` and, with
    ``return_handle=True``, ``start()``.  ``await handle`` waits for the task and
    returns its value, or raises TaskFailed from its exception (TaskCancelled if it
    was cancelled).  ``cancel()`` cancels this task alone.
    """

    Status = _Status
    # What a handle raises: the AnyIO bridge's handles raise AnyIO's classes too.
    _Failed: type[TaskFailed] = TaskFailed
    _Cancelled: type[TaskCancelled] = TaskCancelled
    _NotFinished: type[TaskNotFinished] = TaskNotFinished

    __slots__ = ("__weakref__", "_task", "_coro", "_scope", "_start_value")

    def __init__(self, task: Task, coro: Coroutine[Any, Any, T_co],
                 start_value: Any = _NO_START_VALUE) -> None:
        self._task = task
        self._coro = coro
        self._scope: _HandleScope | None = None
        self._start_value = start_value

    # -- state ----------------------------------------------------------------

    @property
    def status(self) -> _Status:
        """PENDING, CANCELLING (``cancel()`` was called), or how the task ended."""
        return self._status()

    def _status(self) -> _Status:
        task = self._task
        if not task.done():
            if self._scope is not None and self._scope._cancel_called:
                return _Status.CANCELLING
            return _Status.PENDING
        if task.cancelled():
            return _Status.CANCELLED
        if task.exception() is not None:
            return _Status.FAILED
        return _Status.FINISHED

    @property
    def name(self) -> str:
        """The name of the task."""
        return self._task.get_name()

    @property
    def coro(self) -> Coroutine[Any, Any, T_co]:
        """The coroutine the task runs."""
        return self._coro

    @property
    def exception(self) -> BaseException | None:
        """What the task raised, or None if it returned.

        Raises TaskNotFinished while it runs, TaskCancelled if it was cancelled.
        """
        status = self._status()
        if status is _Status.FAILED:
            return self._task.exception()
        if status is _Status.FINISHED:
            return None
        raise self._not_available(status)

    @property
    def return_value(self) -> T_co:
        """What the task returned.

        Raises TaskNotFinished while it runs, TaskCancelled if it was cancelled,
        TaskFailed (from its exception) if it raised.
        """
        status = self._status()
        if status is _Status.FINISHED:
            return self._task.result()  # type: ignore[no-any-return]
        if status is _Status.FAILED:
            # AnyIO's sentences first (code and tests match them), then which task.
            error = self._Failed(f"the task raised an exception (task {self.name!r})")
            error.__cause__ = self._task.exception()
            raise error
        raise self._not_available(status)

    @property
    def start_value(self) -> T_startval_co:
        """The value the task passed to ``task_status.started()``.

        Raises RuntimeError unless the handle came from ``start(return_handle=True)``.
        """
        if self._start_value is _NO_START_VALUE:
            raise RuntimeError("the task was not started with TaskGroup.start(); "
                               "only start(..., return_handle=True) gives a start value")
        return self._start_value  # type: ignore[no-any-return]

    def _not_available(self, status: _Status) -> Exception:
        if status is _Status.PENDING:
            return self._NotFinished(f"the task has not finished yet (task {self.name!r}); "
                                     f"await the handle (or handle.wait()) first")
        error = self._Cancelled(f"the task was cancelled (task {self.name!r})")
        if status is _Status.CANCELLED:
            try:
                self._task.result()
            except asyncio.CancelledError as cancelled:
                error.__cause__ = cancelled
        return error

    # -- waiting and cancelling ---------------------------------------------

    async def wait(self) -> None:
        """Wait until the task has finished, however it ended (a checkpoint)."""
        task = self._task
        if task.done():
            await checkpoint()
            return
        # Not `await task`: cancelling this wait must not cancel the task.
        finished = task._loop.create_future()

        def wake(_: object) -> None:
            if not finished.done():
                finished.set_result(None)

        task.add_done_callback(wake, context=_NO_CONTEXT)
        try:
            await finished
        except asyncio.CancelledError as cancel:
            if not task.done():
                raise
            # The task ended in the same pass, and its group's done callback (queued
            # first) cancelled us before ``wake`` ran.  In Trio the end wakes the
            # waiter first: the wait is over, and a scope's cancellation waits for
            # the next checkpoint (a native one is delivered again).
            redeliver(asyncio.current_task(), cancel)
        finally:
            task.remove_done_callback(wake)

    def __await__(self) -> Generator[Any, Any, T_co]:
        yield from self.wait().__await__()
        return self.return_value

    def cancel(self, reason: str | None = None) -> None:
        """Cancel this task alone, as a cancel scope around all its code would.

        Every checkpoint in the task raises CancelledError from now on (shields
        inside it hold).  Does nothing once the task has finished.
        """
        reason = _check_reason(reason)
        task = self._task
        if task.done():
            return
        scope = self._scope
        if scope is None:
            scope = self._scope = _surround(task)
        scope.cancel(reason)

    def __repr__(self) -> str:
        return (f"<TaskHandle {self._status().name.lower()} name={self.name!r} "
                f"coro={self._coro!r}>")


def _surround(task: Task) -> _HandleScope:
    """Put a scope between ``task``'s own scopes and the scope it was spawned into."""
    scope = _HandleScope()
    interpose(task, scope)
    return scope
