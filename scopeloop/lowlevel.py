"""Time, checkpoints and task introspection (AnyIO's names, asyncio's machinery).

Also re-exports, under AnyIO's ``anyio.lowlevel`` names, the run variables
(``RunVar``, ``RunvarToken``) and event loop tokens (``EventLoopToken``,
``current_token``), which live in modules of their own.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any

from ._waitqueue import will_raise
from .scope import CancelScope
from .task import Task, current_scope_task
from .token import EventLoopToken, current_token, running_loop

if TYPE_CHECKING:
    from .runvar import RunVar, RunvarToken

__all__ = (
    "checkpoint", "checkpoint_if_cancelled", "cancel_shielded_checkpoint", "sleep",
    "sleep_until", "sleep_forever", "current_time", "get_cancelled_exc_class",
    "get_current_task", "get_running_tasks", "TaskInfo", "wait_all_tasks_blocked",
    "RunVar", "RunvarToken", "EventLoopToken", "current_token",
)

sleep = asyncio.sleep


async def checkpoint() -> None:
    """Let other tasks run; raise CancelledError if this task is effectively cancelled."""
    await asyncio.sleep(0)


async def checkpoint_if_cancelled() -> None:
    """Raise CancelledError if this task is effectively cancelled; otherwise return at once.

    Unlike ``checkpoint()`` it does not let other tasks run when there is nothing to
    raise.  A pending native ``Task.cancel()`` counts as cancelled too.
    """
    if will_raise(current_scope_task("checkpoint_if_cancelled()")):
        await asyncio.sleep(0)  # the checkpoint raises CancelledError


async def cancel_shielded_checkpoint() -> None:
    """Let other tasks run without raising for scope cancellation.

    The same as ``with CancelScope(shield=True): await checkpoint()``.  A native
    ``Task.cancel()`` is not held back (shields never block native cancellation);
    a scope cancellation stays pending for the next checkpoint.
    """
    with CancelScope(shield=True):
        await asyncio.sleep(0)


async def sleep_until(deadline: float) -> None:
    """Sleep until ``loop.time()`` reaches ``deadline`` (a checkpoint even if it has)."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(deadline - loop.time(), 0))
    # uvloop rounds timers to milliseconds and may wake a little early.
    while (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(remaining)


async def sleep_forever() -> None:
    """Sleep until cancelled."""
    await asyncio.get_running_loop().create_future()


def current_time() -> float:
    """The running loop's clock (``loop.time()``), which deadlines are measured in."""
    return asyncio.get_running_loop().time()


def get_cancelled_exc_class() -> type[BaseException]:
    """The exception raised by cancelled checkpoints: ``asyncio.CancelledError``."""
    return asyncio.CancelledError


class TaskInfo:
    """A snapshot of a task: ``id``, ``name``, ``parent_id`` and ``coro``."""

    __slots__ = ("id", "name", "parent_id", "coro", "_task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.id = id(task)
        self.name = task.get_name()
        parent = task._parent_task if isinstance(task, Task) else None
        self.parent_id: int | None = None if parent is None else id(parent)
        self.coro = task.get_coro()
        self._task = task

    def has_pending_cancellation(self) -> bool:
        """True if the task's next checkpoint will raise CancelledError."""
        task = self._task
        if task.done():
            return False
        if isinstance(task, Task) and task._cancelling_scope() is not None:
            return True
        if task._must_cancel:  # type: ignore[attr-defined]
            return True
        # A native cancel() of a task blocked on a future cancels that future (and
        # leaves _must_cancel unset): the task wakes with CancelledError.
        waiter = task._fut_waiter  # type: ignore[attr-defined]
        return waiter is not None and waiter.cancelled()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskInfo) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"TaskInfo(id={self.id}, name={self.name!r})"


def get_current_task() -> TaskInfo:
    """Information about the running task."""
    return TaskInfo(current_scope_task("get_current_task()"))


def get_running_tasks() -> list[TaskInfo]:
    """Information about every task of the running loop that has not finished.

    Raises NoEventLoopError outside a running loop.
    """
    loop = running_loop("get_running_tasks()")
    return [TaskInfo(task) for task in asyncio.all_tasks(loop) if not task.done()]


def _blocked_on(task: asyncio.Task[Any]) -> object:
    """What ``task`` is blocked on, or None if it can run (or is running)."""
    if task.done():
        return task
    waiter = task._fut_waiter  # type: ignore[attr-defined]
    return waiter if waiter is not None and not waiter.done() else None


async def wait_all_tasks_blocked() -> None:
    """Return once every other task of this loop is blocked waiting on something.

    A task is blocked when it waits on a future that is not done.  Each round lets
    everything that is ready run once; the loop is settled when a whole round
    passes in which no other task was runnable and none moved to another future
    (so callbacks still in flight, such as a finished child waking its task group,
    have run too).  This never sleeps and never returns while a task is runnable.
    """
    me = current_scope_task("wait_all_tasks_blocked()")
    before: dict[asyncio.Task[Any], object] | None = None
    while True:
        await asyncio.sleep(0)
        now = {task: _blocked_on(task) for task in asyncio.all_tasks() if task is not me}
        if all(waiter is not None for waiter in now.values()):
            if now == before:
                return
            before = now
        else:
            before = None


def __getattr__(name: str) -> Any:
    # Run variables are imported on first use (PEP 562): `import scopeloop` imports
    # this module, and most programs never use one.
    if name not in ("RunVar", "RunvarToken"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".runvar", __package__), name)
    globals()[name] = value
    return value
