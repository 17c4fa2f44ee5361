"""Everything scopeloop relies on in CPython beyond asyncio's documented API.

One place for each internal: what it is, who uses it, what breaks if it changes,
and the versions it was checked on.  ``tests/test_cpython_internals.py`` has one
test per entry that fails loudly when the internal changes shape.

Checked means: the test suite ran there (3.11.7, 3.12.1, 3.13.0 from pyenv, and
3.13.5 built from Debian 13's source).  "3.14 (read)" means read in CPython's
sources after 3.14 (a stored copy of Lib/asyncio/taskgroups.py and events.py from
the main branch), not run; "3.14 (notes)" means known from the release notes only.

Hot paths read a C attribute directly (``task._fut_waiter``) rather than through a
function here: the attribute is checked once, at import, below.  Internals that a
missing attribute would turn into wrong behaviour later (a spin, a lost
cancellation) are required at import, with an error that says what is missing.

The internals
-------------

1. ``Task._fut_waiter`` (C Task, read only): the future the task is blocked on, or
   None.  task.py (delivery cancels it), _waitqueue.py, lowlevel.py
   (wait_all_tasks_blocked), diagnostics/_tree.py (waiting/ready).  Required at import.
   Checked 3.11.7, 3.12.1, 3.13.0, 3.13.5.  3.14 (notes): unchanged (AnyIO 4.16
   reads it too).
2. ``Task._must_cancel`` (C Task, read only): a cancel() is pending and will be
   thrown into the coroutine at its next step.  task.py, scope.py, _waitqueue.py,
   _tcpstream.py, to_thread.py, lowlevel.py.  Required at import.  Checked as 1.
3. ``Task._loop`` / ``Future._loop`` (C, read only): the loop, without the
   ``get_loop()`` call.  group.py, scope.py, task.py, streams.py, to_thread.py.
   Required at import.  Checked as 1.
4. ``Task._source_traceback`` / ``Handle._source_traceback`` (debug mode only): the
   creation stack asyncio keeps; loop.py and diagnostics.py trim their own frames
   from it.  Read with a default: if missing, tracebacks just show one more frame.
   Checked as 1.
5. ``uncancel()`` to zero also clears a pending ``_must_cancel``: from 3.13.0 (not
   in 3.11.7, 3.12.1).  ``UNCANCEL_CLEARS_PENDING``; streams.py and task.py rely on
   the difference.  The test checks the behaviour matches the constant.  Checked as 1.
6. The running task without ``asyncio.current_task()``'s overhead:
   ``task_of_loop(loop)``.  3.12+: ``_asyncio.current_task`` (the same C function as
   ``asyncio.current_task``).  3.11: the C module's ``{loop: task}`` dict
   ``_asyncio._current_tasks`` (= ``asyncio.tasks._current_tasks``), as
   ``CURRENT_TASKS``; _waitqueue.py and _tcpstream.py.  Required at import on 3.11 only.
   3.14 (notes): the current task moved into the thread state and the dict is gone,
   which does not matter (3.11 only).
7. Coroutine introspection: ``cr_await``, ``cr_frame``, ``cr_running``,
   ``cr_suspended`` (3.11+), ``gi_frame``/``gi_yieldfrom`` (generator-based
   awaitables), and frames' ``f_back``, ``f_code``, ``f_lineno``, ``f_locals``,
   ``co_qualname`` (3.11+), ``sys._getframe``.  ``not_started()``,
   ``innermost_coroutine()``, ``await_frames()``; task.py (a task that has not run
   yet is not interrupted), diagnostics.py (the tree).  Documented in ``inspect``
   but CPython-specific.  Checked as 1.
8. asyncio.TaskGroup's exit wait: ``waits_for_stdlib_group_children()``.  The group
   catches the CancelledError of its wait for its children and waits again, so a
   level-triggered scope would interrupt that wait forever (issue 13).  Recognised
   by what the task waits on and why, not by a function's identity: the innermost
   coroutine of the task is a method of an ``asyncio.TaskGroup`` instance (its first
   argument, whatever its name) whose completion future ``_on_completed_fut`` is the
   future the task is blocked on.  Its body was ``TaskGroup.__aexit__`` in 3.11.7,
   3.12.1, 3.13.0 and moved into ``TaskGroup._aexit`` in 3.12.8+/3.13.1+ (checked
   3.13.5; 3.14 (read): ``_aexit``, ``_on_completed_fut`` unchanged).  If a CPython
   drops ``_on_completed_fut`` the check falls back to "the innermost coroutine is one
   of asyncio.TaskGroup's own coroutine methods" (found from the class, not by name):
   no spin, at worst a subclass that moves the body is interrupted again.
9. The C Task's step callback (``TaskStepMethWrapper``, whose ``__self__`` is the
   task): diagnostics.py skips it when the debug loop records ``call_soon``.  Its
   type is found once by creating a task on a stand-in loop (``task_step_type()``),
   not by its name.  Checked as 1.
10. ``asyncio._get_running_loop()`` (exported, underscore-named): runner.py refuses
    to run inside a running loop.  ``get_running_loop_or_none``.  Checked as 1.
11. asyncio's own frames, by file: the stdlib ``asyncio`` directory,
    ``asyncio/tasks.py`` (create_task/ensure_future/gather/shield pass a request on)
    and ``asyncio/base_events.py`` (its call_later calls call_at and trims one frame
    of the timer's creation traceback itself).  ``ASYNCIO_DIR``, ``ASYNCIO_TASKS``,
    ``BASE_EVENTS``; diagnostics.py only (who created what).  Checked as 1.
12. The stdlib eager task factory: ``asyncio.create_eager_task_factory(cls)`` returns
    a function with the code of ``asyncio.eager_task_factory``; AnyIO recognises that
    code and only then starts tasks eagerly-aware (task.py's ``eager_task_factory``).
    3.12+.  Checked 3.12.1, 3.13.0, 3.13.5.
13. The event loop policy classes: ``POLICY_BASE`` is the stdlib default policy class
    (3.14+: the private ``_DefaultEventLoopPolicy``, so that importing scopeloop does
    not warn; before: ``asyncio.DefaultEventLoopPolicy``), or None where there is no
    such class (3.16 removes the policy API).  ``set_event_loop_policy`` likewise.
    loop.py (``EventLoopPolicy``), __main__.py.  Checked as 1, and with the names
    deleted (the test simulates 3.16).  3.14 (read): the public names warn
    (``warnings._deprecated(..., remove=(3, 16))``), the private aliases do not.
14. The C Task is ``_asyncio.Task`` (``asyncio.Task is _asyncio.Task``): a Python
    subclass keeps the C step machinery; cancel/uncancel/cancelling overrides are
    called by stdlib code (asyncio.timeout, TaskGroup, Runner).  Performance and the
    ledger depend on it, not correctness of the check above.  Checked as 1.
15. ``Task._log_destroy_pending`` (C Task, writable): False keeps a pending task
    that is destroyed from logging "Task was destroyed but it is pending!".
    ``abandon_quietly()``: runner.py for the tasks it abandons on a second Ctrl+C
    (their coroutines are closed by hand), and item 9's stand-in task.  If it went away: the log line
    comes back, nothing else.  Checked 3.11.7, 3.12.1, 3.13.0, 3.13.5.

Known gap (not an internal, the same family as item 8): ``asyncio.Condition.wait()``
re-acquires its lock in a loop that catches CancelledError, so a task waiting there
inside a cancelled scope, while another task holds the lock, is interrupted every
step (measured 0.99 CPU/wall on 3.11.7 and 3.13.5); and 3.11/3.12 re-raise a bare
CancelledError there, which the scope then does not catch.  Not fixed yet.

What else changed in 3.14 that scopeloop touches
------------------------------------------------
* Policy API deprecated (removed in 3.16): handled, item 13; ``scopeloop.run`` and
  ``loop_factory=scopeloop.new_event_loop`` never touch it (read + simulated).
* TaskGroup body in ``_aexit``: handled, item 8 (read).  TaskGroup.create_task now
  passes ``**kwargs`` (e.g. ``eager_start``) to ``loop.create_task``, which scopeloop's
  create_task forwards to Task (read; not run).
* ``futures.future_add_to_awaited_by`` / the call-graph introspection
  (``asyncio.capture_call_graph``) follow ``cr_await`` like diagnostics does (notes).
* The current task lives in the thread state; ``asyncio.tasks._current_tasks`` and
  ``_asyncio._current_tasks`` are gone (notes): used on 3.11 only (item 6).
* ``Task(..., eager_start=...)`` and ``create_task(..., eager_start=...)`` (notes):
  passed through by the loop's create_task as keyword arguments.
* Free-threaded builds: the C Task's fields are guarded by critical sections (notes);
  reads of ``_fut_waiter``/``_must_cancel`` from the loop's own thread are unchanged.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = (
    "UNCANCEL_CLEARS_PENDING", "CURRENT_TASKS", "task_of_loop", "not_started",
    "innermost_coroutine", "await_frames", "waits_for_stdlib_group_children",
    "task_step_type", "get_running_loop_or_none", "ASYNCIO_DIR", "ASYNCIO_TASKS",
    "BASE_EVENTS", "POLICY_BASE", "set_event_loop_policy", "abandon_quietly",
)


def _missing(what: str, why: str) -> ImportError:
    return ImportError(
        f"scopeloop cannot run on Python {sys.version.split()[0]}: {what} is missing, "
        f"and without it {why}.  Please report this at scopeloop's issue tracker "
        f"with your Python version.")


# -- 1-3: the C Task's state ---------------------------------------------------------

for _name, _why in (
        ("_fut_waiter", "a cancel scope cannot interrupt a waiting task"),
        ("_must_cancel", "a scope cannot tell a pending native cancel() from none"),
        ("_loop", "tasks do not know their loop cheaply")):
    if not hasattr(asyncio.Task, _name):
        raise _missing(f"asyncio.Task.{_name}", _why)
del _name, _why

# -- 5 ---------------------------------------------------------------------------------

UNCANCEL_CLEARS_PENDING = sys.version_info >= (3, 13)

# -- 6: the running task ---------------------------------------------------------------

CURRENT_TASKS: dict[Any, Any] | None
task_of_loop: Callable[[Any], Any]
if sys.version_info >= (3, 12):
    # (3.12+: asyncio.current_task is this C function already.)
    task_of_loop = asyncio.current_task
    CURRENT_TASKS = None
else:
    try:
        from _asyncio import _current_tasks  # type: ignore[attr-defined]
    except ImportError:
        raise _missing("_asyncio._current_tasks",
                       "the running task cannot be found cheaply") from None
    CURRENT_TASKS = _current_tasks
    task_of_loop = _current_tasks.get

# -- 7: coroutines and frames ------------------------------------------------------------

_Coroutine = types.CoroutineType


def not_started(coro: Any) -> bool:
    """Whether ``coro`` has neither run nor finished (its task's first step is due)."""
    # Not yet started: it has a frame but is not suspended and not running.
    return (getattr(coro, "cr_suspended", True) is False
            and coro.cr_frame is not None and not coro.cr_running)


def innermost_coroutine(coro: Any) -> Any:
    """The innermost native coroutine of the await chain that starts at ``coro``."""
    inner = getattr(coro, "cr_await", None)
    while type(inner) is _Coroutine:
        coro, inner = inner, inner.cr_await
    return coro


def await_frames(coro: Any) -> list[types.FrameType]:
    """The frames of a suspended await chain (coroutines and generators), outermost first."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


def _receiver(frame: types.FrameType) -> Any:
    """The first argument of the function running in ``frame`` (a method's self)."""
    code = frame.f_code
    if not code.co_argcount:
        return None
    return frame.f_locals.get(code.co_varnames[0])


# -- 8: asyncio.TaskGroup's wait for its children -------------------------------------

_TaskGroup = asyncio.TaskGroup
# The fallback of waits_for_stdlib_group_children(): the code of every coroutine
# method asyncio.TaskGroup defines, whatever they are called.
_TASKGROUP_CODES = frozenset(
    value.__code__ for value in vars(_TaskGroup).values()
    if inspect.iscoroutinefunction(value))
_COMPLETED_FUT = "_on_completed_fut"
_HAS_COMPLETED_FUT = hasattr(_TaskGroup(), _COMPLETED_FUT)


def waits_for_stdlib_group_children(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` is blocked in an asyncio.TaskGroup's exit, waiting for its children.

    Not cheap (it walks the task's coroutines and reads a frame's locals): only for
    a task that was just interrupted and is blocked again.
    """
    waiter = task._fut_waiter  # type: ignore[attr-defined]
    if waiter is None:
        return False
    frame = getattr(innermost_coroutine(task.get_coro()), "cr_frame", None)
    if frame is None:
        return False
    group = _receiver(frame)
    if not isinstance(group, _TaskGroup):
        return False
    if _HAS_COMPLETED_FUT:
        return getattr(group, _COMPLETED_FUT, None) is waiter
    return frame.f_code in _TASKGROUP_CODES  # pragma: no cover (no such CPython yet)


# -- 9: the C Task's step callback --------------------------------------------------

_step_type: type | None = None


class _StandInLoop:
    """Just enough of a loop for a Task to schedule its first step on."""

    def __init__(self) -> None:
        self.scheduled: list[Any] = []

    def get_debug(self) -> bool:
        return False

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> None:
        self.scheduled.append(callback)

    def call_exception_handler(self, context: Any) -> None:
        pass


def abandon_quietly(task: asyncio.Task[Any]) -> None:
    """Item 15: ``task`` is abandoned on purpose; it is not logged when destroyed."""
    task._log_destroy_pending = False  # type: ignore[attr-defined]


def task_step_type() -> type:
    """The type of the callback a Task schedules for its next step."""
    global _step_type
    if _step_type is None:
        async def nothing() -> None:
            pass
        loop = _StandInLoop()
        coro = nothing()
        task = asyncio.Task(coro, loop=loop)  # type: ignore[arg-type]
        abandon_quietly(task)
        coro.close()
        if len(loop.scheduled) != 1:  # pragma: no cover
            raise RuntimeError("asyncio.Task no longer schedules its first step with "
                               "call_soon; scopeloop.diagnostics needs updating")
        _step_type = type(loop.scheduled[0])
    return _step_type


# -- 10 ---------------------------------------------------------------------------

get_running_loop_or_none = asyncio.events._get_running_loop

# -- 11: asyncio's files ---------------------------------------------------------------

ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
ASYNCIO_TASKS = os.path.join(ASYNCIO_DIR, "tasks.py")
BASE_EVENTS = os.path.join(ASYNCIO_DIR, "base_events.py")

# -- 13: the event loop policy ---------------------------------------------------------


def _policy_base() -> type | None:
    platform_events = sys.modules.get(
        "asyncio.windows_events" if sys.platform == "win32" else "asyncio.unix_events")
    # 3.14+: the private alias, which does not warn (the public name does).
    base = getattr(platform_events, "_DefaultEventLoopPolicy", None)
    if base is None and sys.version_info < (3, 14):
        base = getattr(asyncio, "DefaultEventLoopPolicy", None)
    return base


POLICY_BASE = _policy_base()
set_event_loop_policy: Any = (getattr(asyncio.events, "_set_event_loop_policy", None)
                              or getattr(asyncio, "set_event_loop_policy", None))
