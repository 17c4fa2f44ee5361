"""Diagnostics: what cancelled work left behind, and a live task/scope tree.

Debug mode
----------
``scopeloop.run(main, debug=True)``, ``new_event_loop(debug=True)`` or the
environment variable ``SCOPELOOP_DEBUG=1`` create a *debug loop*: a subclass of the
backend's scopeloop loop, defined here, that overrides ``call_soon``,
``call_later``, ``call_at``, ``create_task`` and ``close``.  The ordinary loop
classes are left untouched, so with debug off none of this code runs.

The debug loop records every task, timer (``call_later``/``call_at``) and callback
(``call_soon``) that the program's own code creates while a task runs: the
creating task, that task's innermost cancel scope, and the creation site (the
calling line, and up to four of its callers within the task).  It emits one
``LeftoverWarning`` (a ``ResourceWarning``, attributed to the creation site) for
each of these:

* a timer or callback that is still pending when the task that created it ends,
  cancelled or not (a callback scheduled in the task's last step is reported when
  it runs, right after the task ended);
* a task it created outside any task group that is still running when it ends;
* any of them still pending when the loop closes, if its task never ended.

"The program's own code" is code outside the standard library (asyncio included),
installed packages (site-packages) and scopeloop: libraries manage what they
schedule for themselves (``asyncio.sleep`` and ``asyncio.timeout`` timers, a
connection pool's timers, AnyIO's internal callbacks), and what asyncio's C code
and uvloop schedule (task steps, future callbacks) is recognised and skipped too.
Tasks created through ``asyncio.create_task``, ``ensure_future``, ``gather`` or
``shield`` count as created by their caller; children of scopeloop task groups
and of ``asyncio.TaskGroup`` belong to their group, and callbacks made with
``TaskGroup.call_soon``/``call_later`` are cancelled by theirs.  Python hides
``ResourceWarning`` by default; a debug loop shows ``LeftoverWarning`` unless the
program configured warnings itself (``-W``, ``PYTHONWARNINGS``, or a filter).

Debug mode costs: asyncio's own debug mode (which it turns on too) makes most
operations 10-50 times slower; the recording adds a few microseconds per
recorded operation.  ``integration/bench/bench_debug_overhead.py`` measures it.

The tree
--------
``format_tree()`` describes the running loop's tasks; ``print_tree()`` writes that
to stderr.  A debug loop also prints it on SIGUSR1 (Unix, main thread; the
environment variable ``SCOPELOOP_TREE_SIGNAL`` names another signal, or ``off``),
and ``print_tree_on_signal()`` does the same for any loop.  Example::

    scopeloop task tree: 2 tasks (uvloop backend, debug)
    task 'Task-1' waiting at scopeloop/group.py:171 in TaskGroup.__aexit__(), called from app.py:20 in main()
    `- scope 7f486473eb50: cancelled (KeyboardInterrupt)
       `- scope 7f486473ee10: task group with 1 task, cancelled
          `- task 'cleanup' waiting at asyncio/tasks.py:649 in sleep(), called from app.py:15 in cleanup(); created at app.py:22 in main()
             `- scope 7f486476bd50: shield

(after Ctrl+C: the root scope is cancelled, and the program waits for a shielded
cleanup that sleeps).

Format, line by line:

* The header: ``scopeloop task tree: N tasks (<backend> backend[, debug])``.
* Below it, one node per line; a child is indented under its parent with "+- "
  (more siblings follow) or "`- " (the last sibling), and "|  " or three spaces
  continue the parent's column.  Roots start at column 0.
* ``task '<name>' <state> at <file>:<line> in <function>()``: *state* is
  ``running`` (the task calling format_tree), ``waiting`` (blocked on a future)
  or ``ready`` (scheduled to run); the location is the innermost suspended frame
  of its coroutine chain, followed by ``, called from <file>:<line> in <f>()``,
  the innermost frame outside asyncio and scopeloop, when they differ.  Then,
  after ``; ``, as they apply: ``cancelled by scope <id> (<reason>)`` (it is
  effectively cancelled), ``cancel() requested <n>x`` (native requests, as
  ``cancelling()`` counts them), ``created at <file>:<line>`` (debug mode) and
  ``outside any task group`` (debug mode: a task spawned with plain
  ``create_task``, listed under the task that created it).
* ``scope <id>[: attributes]``: a cancel scope the task above has entered, the
  outermost first, each nested in the previous one.  Attributes, in this order:
  ``task group with <n> tasks`` (tasks spawned into it are its children in the
  tree), ``cancelled`` or ``cancelled (<reason>)``, ``shield``, and
  ``deadline in <s>s`` or ``deadline <s>s ago``.  ``<id>`` is the hex id that
  the CancelledError a scope raises carries in its message.  A pending
  ``start()`` shows as ``scope <id>: start() waiting for task_status.started()``
  with the task it started below it.
* ``pending timer <callback> due in <s>s, created at <file>:<line>`` and
  ``pending callback <callback>, created at ...`` (debug mode): what the task
  above has scheduled and not yet seen run or cancelled.

Paths are relative to the current directory or to the standard library when
under them.  Tasks are sorted by name (numbers in names compare as numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import re
import reprlib
import signal
import site
import sys
import sysconfig
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from types import FrameType
from typing import IO, Any, TypeVar

from ._asyncgen import watch_yields
from .group import _StarterScope
from .loop import AsyncioEventLoop
from .scope import CancelScope
from ._cpython import ASYNCIO_DIR as _ASYNCIO_DIR
from ._cpython import ASYNCIO_TASKS as _ASYNCIO_TASKS
from ._cpython import BASE_EVENTS as _BASE_EVENTS
from ._cpython import await_frames, task_step_type
from ._cpython import not_started as _not_started
from .task import _NO_CONTEXT

try:
    from .loop import UVLoopEventLoop
except ImportError:  # uvloop is not installed
    UVLoopEventLoop = None  # type: ignore[assignment,misc]

__all__ = ("LeftoverWarning", "format_tree", "print_tree", "print_tree_on_signal",
           "debug_loop_class")

_ENV_SIGNAL = "SCOPELOOP_TREE_SIGNAL"
_STACK_DEPTH = 5  # the creation site and up to four callers

_SCOPELOOP_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_INTERNAL_DIRS = (_ASYNCIO_DIR, _SCOPELOOP_DIR)
_STDLIB_DIR = os.path.dirname(os.path.dirname(asyncio.__file__)) + os.sep


def _library_dirs() -> tuple[str, ...]:
    """The standard library, installed packages, and scopeloop itself."""
    paths = sysconfig.get_paths()
    dirs = {_STDLIB_DIR, _SCOPELOOP_DIR}
    dirs.update(paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")
                if key in paths)
    with contextlib.suppress(AttributeError):  # site of an old virtualenv
        dirs.update(site.getsitepackages())
    with contextlib.suppress(AttributeError):
        dirs.add(site.getusersitepackages())
    return tuple(sorted({os.path.join(os.path.abspath(d), "") for d in dirs}))


# Code here schedules work for itself (asyncio.sleep, a connection pool's timers, a
# library's internal tasks) and manages it: what it schedules is not the program's.
_LIBRARY_DIRS = _library_dirs()
_SIGUSR1: int | None = getattr(signal, "SIGUSR1", None)  # absent on Windows
# What a C Task schedules for its next step (found once, not by its type's name).
_TASK_STEP: Any = task_step_type()

_T = TypeVar("_T")


class LeftoverWarning(ResourceWarning):
    """A timer, callback or task outlived the task that created it (debug mode)."""


# -- what the debug loop records ------------------------------------------------

_Site = tuple[str, int, str]  # filename, line, function
# Who created a task, and where (kept apart from _Record: a record holds its task).
_Origin = tuple["weakref.ref[asyncio.Task[Any]]", _Site]


class _Record:
    """Who created a timer, callback or task, and where."""

    __slots__ = ("kind", "target", "callback", "args", "owner", "scope", "stack",
                 "fired", "reported")

    def __init__(self, kind: str, owner: asyncio.Task[Any], stack: list[_Site]) -> None:
        self.kind = kind  # "timer", "callback" or "task"
        self.target: Any = None  # the handle or the task
        self.callback: Any = None
        self.args: tuple[Any, ...] = ()
        self.owner = owner
        self.scope: CancelScope | None = getattr(owner, "_scope", None)
        self.stack = stack
        self.fired = False
        self.reported = False

    @property
    def site(self) -> _Site:
        return self.stack[0]

    def pending(self) -> bool:
        if self.kind == "task":
            return not self.target.done()
        return not self.fired and not self.target.cancelled()

    def leftover(self) -> bool:
        """Pending, and not owned by a task group."""
        if not self.pending() or self.reported:
            return False
        if self.kind == "task":
            return _attach_scope(self.target) is None
        return True


def _is_library(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_LIBRARY_DIRS)


def _task_top(task: asyncio.Task[Any]) -> FrameType | None:
    """The frame of the task's own coroutine: where its part of the stack ends."""
    return getattr(task.get_coro(), "cr_frame", None)


def _stack_from(frame: FrameType, top: FrameType | None) -> list[_Site]:
    """``frame`` and its callers, out to the task's coroutine frame ``top``."""
    stack: list[_Site] = []
    current: FrameType | None = frame
    while current is not None and len(stack) < _STACK_DEPTH:
        stack.append(_frame_site(current))
        if current is top:
            break
        current = current.f_back
        if current is not None and current.f_code.co_filename.startswith(_INTERNAL_DIRS):
            break  # a task group's child wrapper, or the loop's own machinery
    return stack


def _program_frame(frame: FrameType | None, top: FrameType | None) -> FrameType | None:
    """The innermost frame of the program's own code, within the task's stack."""
    while frame is not None:
        if not _is_library(frame):
            return frame
        if frame is top:
            return None
        frame = frame.f_back
    return None


def _is_internal_callback(callback: Any, args: tuple[Any, ...]) -> bool:
    """Callbacks that asyncio's C code and uvloop schedule for themselves.

    Their ``call_soon`` has no Python caller of its own, so the caller's frame says
    nothing: recognise them by what they call.
    """
    if type(callback) is _TASK_STEP:
        return True  # a task's next step
    if len(args) == 1 and asyncio.isfuture(args[0]):
        return True  # a future's done-callback (a task's wake-up among them)
    owner = getattr(callback, "__self__", None)
    if owner is not None and not isinstance(owner, type(sys)):
        module = type(owner).__module__
    else:
        module = getattr(callback, "__module__", None) or ""
    return module.startswith("uvloop")


def _tracking(loop: _DebugLoopMixin, record: _Record, callback: Callable[..., _T]
              ) -> Callable[..., _T]:
    """Wrap ``callback`` so that the record knows when it ran."""
    def run(*args: Any) -> _T:
        record.fired = True
        if not record.reported and record.owner.done():
            _report(record, "ran after")
        owned = loop._diag_owned.get(record.owner)
        if owned is not None:
            owned.discard(record)
        return callback(*args)
    # asyncio formats a handle (reprs, slow-callback and error messages) from the
    # callback's __qualname__ and finds its source through __wrapped__; set just
    # these (functools.update_wrapper costs as much as the rest of the recording).
    run.__qualname__ = (getattr(callback, "__qualname__", None)
                        or getattr(callback, "__name__", None) or repr(callback))
    run.__wrapped__ = callback  # type: ignore[attr-defined]
    return run


def _trim_source_traceback(obj: Any) -> None:
    """Drop this module's frames (and the base loop's they call) from the end of the
    creation traceback that asyncio's debug mode keeps, so that it ends where stock
    asyncio's does: at the caller of call_soon/call_later/call_at/create_task."""
    stack = getattr(obj, "_source_traceback", None)  # (_cpython.py, item 4)
    while stack and stack[-1].filename in (__file__, _BASE_EVENTS):
        del stack[-1]


# -- the debug loop -------------------------------------------------------------

class _DebugLoopMixin:
    """Records who creates what; reports leftovers when tasks end and at close."""

    _diag_owned: dict[asyncio.Task[Any], set[_Record]]
    _diag_signal: int | None = None  # the signal that prints the tree
    _diag_tasks: weakref.WeakKeyDictionary[asyncio.Task[Any], _Origin | None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._diag_owned = {}
        self._diag_tasks = weakref.WeakKeyDictionary()
        try:
            signum = _signal_from_env()
        except ValueError:
            self.close()
            raise
        _show_leftover_warnings()
        self._diag_signal = signum if print_tree_on_signal(signum, loop=self) else None  # type: ignore[arg-type]

    def _asyncgen_firstiter_hook(self, agen: Any) -> None:
        super()._asyncgen_firstiter_hook(agen)  # type: ignore[misc]
        # Warn at a yield inside a scope the generator entered (see _asyncgen).
        watch_yields(agen)

    # -- recording --------------------------------------------------------------

    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: Any = None) -> asyncio.Handle:
        caller = sys._getframe(1)
        record = self._diag_handle("callback", callback, args, context, caller)
        if record is not None:
            callback = _tracking(self, record, callback)
        handle = super().call_soon(callback, *args, context=context)  # type: ignore[misc]
        return self._diag_created(handle, record, caller)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any,
                   context: Any = None) -> asyncio.TimerHandle:
        caller = sys._getframe(1)
        record = self._diag_handle("timer", callback, args, context, caller)
        if record is not None:
            callback = _tracking(self, record, callback)
        handle = super().call_later(delay, callback, *args, context=context)  # type: ignore[misc]
        return self._diag_created(handle, record, caller)  # type: ignore[return-value]

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: Any = None) -> asyncio.TimerHandle:
        caller = sys._getframe(1)
        record = self._diag_handle("timer", callback, args, context, caller)
        if record is not None:
            callback = _tracking(self, record, callback)
        handle = super().call_at(when, callback, *args, context=context)  # type: ignore[misc]
        return self._diag_created(handle, record, caller)  # type: ignore[return-value]

    def create_task(self, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = super().create_task(coro, **kwargs)  # type: ignore[misc]
        _trim_source_traceback(task)
        # A task's first step is scheduled with call_soon from inside its
        # constructor, which records it; an eager task may never be scheduled.
        if task not in self._diag_tasks:
            self._diag_task(task, sys._getframe(1))
        return task

    def _diag_created(self, handle: asyncio.Handle, record: _Record | None,
                      caller: FrameType) -> asyncio.Handle:
        if record is not None:
            record.target = handle
            self._diag_own(record)
        if caller.f_code.co_filename != _BASE_EVENTS:
            # (The base loop's call_later calls call_at, then trims one frame itself.)
            _trim_source_traceback(handle)
        return handle

    def _diag_handle(self, kind: str, callback: Any, args: tuple[Any, ...], context: Any,
                     frame: FrameType) -> _Record | None:
        if context is _NO_CONTEXT:
            return None  # scopeloop's own: deliveries, deadlines, re-checks
        if type(callback) is _TASK_STEP:
            task = callback.__self__
            if task not in self._diag_tasks:
                if _not_started(task.get_coro()):
                    self._diag_task(task, frame)  # being created right now
                else:
                    self._diag_tasks[task] = None  # an eager task made elsewhere
                    self._diag_watch(task)
            return None
        if _is_library(frame):
            # Scheduled by asyncio, scopeloop (or by call_later from call_at, or the
            # other way round, inside this class) or an installed library, which
            # manages what it schedules.
            return None
        if _is_internal_callback(callback, args):
            return None
        owner = asyncio.current_task(self)  # type: ignore[arg-type]
        if owner is None:
            return None
        record = _Record(kind, owner, _stack_from(frame, _task_top(owner)))
        record.callback = callback
        record.args = args
        return record  # owned once the handle exists (_diag_created)

    def _diag_task(self, task: asyncio.Task[Any], frame: FrameType) -> None:
        self._diag_watch(task)
        owner = asyncio.current_task(self)  # type: ignore[arg-type]
        if owner is None or owner is task:
            self._diag_tasks[task] = None
            return
        top = _task_top(owner)
        # Who asked for the task: scopeloop's and asyncio.create_task()/gather()/
        # shield()'s frames only pass the request on.
        creator: FrameType | None = frame
        while creator is not None and creator is not top and (
                creator.f_code.co_filename.startswith(_SCOPELOOP_DIR)
                or creator.f_code.co_filename == _ASYNCIO_TASKS):
            creator = creator.f_back
        site = _program_frame(creator, top)  # for the tree, whoever created it
        if site is None:
            self._diag_tasks[task] = None
            return
        stack = _stack_from(site, top)
        self._diag_tasks[task] = (weakref.ref(owner), stack[0])
        if creator is site:
            # The program's own code created it; a library (asyncio.TaskGroup,
            # aiohttp...) owns the tasks it creates.
            record = _Record("task", owner, stack)
            record.target = task
            self._diag_own(record)

    def _diag_watch(self, task: asyncio.Task[Any]) -> set[_Record]:
        owned = self._diag_owned.get(task)
        if owned is None:
            # Registered when the task is created, before anyone awaits it, so the
            # check runs right when it ends: before an awaiting task could clean
            # up after it (which would hide the leftover).
            owned = self._diag_owned[task] = set()
            task.add_done_callback(self._diag_owner_done, context=_NO_CONTEXT)
        return owned

    def _diag_own(self, record: _Record) -> None:
        owned = self._diag_watch(record.owner)
        owned.add(record)
        size = len(owned)
        if size >= 64 and size & (size - 1) == 0:
            # Cancelled timers and finished tasks never tell us; forget them at
            # each doubling, so a long-lived task costs amortised O(1) per record.
            owned.difference_update([r for r in owned if not r.pending()])

    # -- reporting --------------------------------------------------------------

    def _diag_owner_done(self, owner: asyncio.Task[Any]) -> None:
        for record in self._diag_owned.pop(owner, ()):
            if record.leftover():
                _report(record, "owner ended")

    def close(self) -> None:
        if self.is_running():  # type: ignore[attr-defined]
            super().close()  # type: ignore[misc]  # raises
            return
        owned, self._diag_owned = self._diag_owned, {}
        try:
            for owner, records in owned.items():
                for record in records:
                    if record.leftover():
                        _report(record, "owner ended" if owner.done() else "loop closed")
        finally:
            super().close()  # type: ignore[misc]
            self._diag_restore_signal()

    def _diag_restore_signal(self) -> None:
        # uvloop removes its signal handlers only while it runs, so a closed uvloop
        # would keep swallowing the signal: put the default action back.
        signum, self._diag_signal = self._diag_signal, None
        if signum is None or threading.current_thread() is not threading.main_thread():
            return
        handler = signal.getsignal(signum)
        if getattr(handler, "__self__", None) is self:
            signal.signal(signum, signal.SIG_DFL)

    def _diag_records(self, owner: asyncio.Task[Any]) -> list[_Record]:
        """The pending timers and callbacks ``owner`` created (for the tree)."""
        return sorted((r for r in self._diag_owned.get(owner, ()) if r.kind != "task"
                       and r.pending()), key=lambda r: r.site)

    def _diag_origin(self, task: asyncio.Task[Any]) -> tuple[asyncio.Task[Any] | None, _Site] | None:
        """The task that created ``task`` (None if gone) and where, if recorded."""
        origin = self._diag_tasks.get(task)
        return None if origin is None else (origin[0](), origin[1])


# (The mixin's methods take the same arguments as asyncio's, typed more loosely.)
class DebugAsyncioEventLoop(_DebugLoopMixin, AsyncioEventLoop):  # type: ignore[misc]
    """scopeloop over the stdlib selector loop, with leftover reports (debug mode)."""

    def __repr__(self) -> str:
        return (f"<scopeloop.DebugAsyncioEventLoop running={self.is_running()} "
                f"closed={self.is_closed()}>")


if UVLoopEventLoop is not None:
    class DebugUVLoopEventLoop(_DebugLoopMixin, UVLoopEventLoop):
        """scopeloop over uvloop, with leftover reports (debug mode)."""

        def __repr__(self) -> str:
            return (f"<scopeloop.DebugUVLoopEventLoop running={self.is_running()} "
                    f"closed={self.is_closed()}>")


def debug_loop_class(backend: str) -> type[asyncio.AbstractEventLoop]:
    """The debug-mode loop class for ``backend`` ("uvloop" or "asyncio")."""
    if backend == "uvloop":
        return DebugUVLoopEventLoop
    return DebugAsyncioEventLoop


def _show_leftover_warnings() -> None:
    """Unhide LeftoverWarning if only Python's default ResourceWarning filter hides it."""
    for action, message, category, module, _ in warnings.filters:
        if message is None and module is None and issubclass(LeftoverWarning, category):
            if action == "ignore" and category is ResourceWarning and not sys.warnoptions:
                warnings.filterwarnings("default", category=LeftoverWarning)
            return


def _report(record: _Record, situation: str) -> None:
    record.reported = True
    filename, lineno, _ = record.site
    warnings.warn_explicit(_message(record, situation), LeftoverWarning, filename, lineno)


def _message(record: _Record, situation: str) -> str:
    owner = record.owner
    by = f"task {owner.get_name()!r}"
    if record.scope is not None:
        by += f" (in scope {id(record.scope):x})"
    ended = "was cancelled" if owner.cancelled() else "finished"
    created = f"created at {_site_text(record.site, short=False)} by {by}"
    if record.kind == "task":
        task = record.target
        what = f"task {task.get_name()!r} running {_coro_name(task)}()"
        if situation == "loop closed":
            text = f"{what}, {created}, was still running when the event loop closed"
        else:
            text = (f"{what}, {created} outside any task group, was still running "
                    f"when that task {ended}")
        fix = ("await or cancel it before its creator ends, or start it in a task group "
               "(scopeloop.create_task_group() or asyncio.TaskGroup)")
    else:
        what = f"{record.kind} {_callable_text(record.callback, record.args)}"
        if situation == "ran after":
            text = f"{what}, {created}, ran after that task {ended}"
        elif situation == "loop closed":
            text = f"{what}, {created}, was still pending when the event loop closed"
        else:
            text = f"{what}, {created}, was still pending when that task {ended}"
        fix = ("cancel it before the task ends (e.g. in a finally block), or schedule it "
               "with TaskGroup.call_soon()/call_later() so that its group cancels it")
    lines = [f"{text}; {fix}"]
    if len(record.stack) > 1:
        lines.append("stack (most recent call last):")
        lines += [f"  {_site_text(site, short=False)}" for site in reversed(record.stack)]
    return "\n".join(lines)


# -- describing things ------------------------------------------------------------

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40


def _callable_text(callback: Any, args: tuple[Any, ...]) -> str:
    if isinstance(callback, functools.partial):
        args = callback.args + args
        callback = callback.func
    name = (getattr(callback, "__qualname__", None) or getattr(callback, "__name__", None)
            or _repr.repr(callback))
    return f"{name}({', '.join(_repr.repr(a) for a in args)})"


def _coro_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", None) or type(coro).__name__


def _short_path(filename: str) -> str:
    cwd = os.getcwd() + os.sep
    if filename.startswith(cwd):
        return filename[len(cwd):]
    if filename.startswith(_SCOPELOOP_DIR):
        return "scopeloop" + os.sep + filename[len(_SCOPELOOP_DIR):]
    if filename.startswith(_STDLIB_DIR):
        return filename[len(_STDLIB_DIR):]
    return filename


def _site_text(site: _Site, short: bool = True) -> str:
    filename, lineno, function = site
    return f"{_short_path(filename) if short else filename}:{lineno} in {function}()"


# -- the tree ----------------------------------------------------------------------

def format_tree(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """Describe the loop's tasks, their cancel scopes and task groups as a text tree.

    ``loop`` defaults to the running loop; call it from the loop's thread.  The
    format is documented in this module's docstring.
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("format_tree() needs a running event loop; call it from "
                               "inside the program, or pass the loop: "
                               "format_tree(loop)") from None
    return "\n".join(_Tree(loop).lines())


def print_tree(loop: asyncio.AbstractEventLoop | None = None, *,
               file: IO[str] | None = None) -> None:
    """Write ``format_tree(loop)`` to ``file`` (default: stderr)."""
    out = sys.stderr if file is None else file
    print(format_tree(loop), file=out, flush=True)


def print_tree_on_signal(signum: int | None = _SIGUSR1, *,
                         loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Print the tree to stderr whenever the process receives ``signum``.

    Uses ``loop.add_signal_handler`` (Unix, main thread only) and leaves a signal
    alone that already has a handler other than the default.  Returns whether
    the handler was installed; the loop removes it when it closes.  A debug loop
    calls this for SIGUSR1 (or ``$SCOPELOOP_TREE_SIGNAL``) when it is created.
    """
    if signum is None:
        return False
    if loop is None:
        loop = asyncio.get_running_loop()
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signum) not in (signal.SIG_DFL, None):
            return False
        loop.add_signal_handler(signum, _print_tree_soon, loop)
    except (NotImplementedError, RuntimeError, ValueError, OSError):
        return False
    return True


def _print_tree_soon(loop: asyncio.AbstractEventLoop) -> None:
    try:
        print_tree(loop)
    except Exception as exc:  # a diagnostic must never take the program down
        print(f"scopeloop: could not print the task tree: {exc!r}", file=sys.stderr)


def _signal_from_env() -> int | None:
    value = os.environ.get(_ENV_SIGNAL, "").strip()
    if value.lower() in ("off", "none", "0", "no"):
        return None
    if not value:
        return _SIGUSR1
    if value.isdigit():
        return int(value)
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    signum = getattr(signal, name, None)
    if not isinstance(signum, int):
        raise ValueError(f"environment variable {_ENV_SIGNAL}={value!r} names no signal; "
                         f"use a name such as SIGUSR2, a number, or 'off'")
    return signum


def _attach_scope(task: asyncio.Task[Any]) -> CancelScope | None:
    """The scope ``task`` was spawned into (a task group's), or None."""
    scope = getattr(task, "_scope", None)
    while scope is not None and scope._host is task:
        scope = scope._parent
    return scope


def _own_scopes(task: asyncio.Task[Any]) -> list[CancelScope]:
    """The scopes ``task`` has entered, outermost first."""
    chain = []
    scope = getattr(task, "_scope", None)
    while scope is not None and scope._host is task:
        chain.append(scope)
        scope = scope._parent
    chain.reverse()
    return chain


def _frames(task: asyncio.Task[Any], running: bool) -> list[FrameType]:
    """The frames of the task's await chain, outermost first."""
    frames = []
    coro: Any = task.get_coro()
    if running:
        # A running coroutine does not expose what it awaits: walk the call stack
        # from format_tree()'s caller out to the task's coroutine instead.
        top = getattr(coro, "cr_frame", None)
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename == __file__:
            frame = frame.f_back
        while frame is not None:
            frames.append(frame)
            if frame is top:
                frames.reverse()
                return frames
            frame = frame.f_back
        return [top] if top is not None else []
    return await_frames(coro)


def _natural(name: str) -> list[Any]:
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name))]


_Node = tuple[str, list[Any]]


class _Tree:
    """One snapshot of a loop's tasks, laid out as a tree of text lines."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._now = loop.time()
        self._current = asyncio.current_task(loop)
        self._debug = isinstance(loop, _DebugLoopMixin)
        self._tasks = sorted(asyncio.all_tasks(loop), key=lambda t: _natural(t.get_name()))
        live = set(self._tasks)
        self._children: dict[CancelScope, list[asyncio.Task[Any]]] = {}
        self._loose: dict[asyncio.Task[Any], list[asyncio.Task[Any]]] = {}
        self._roots: list[asyncio.Task[Any]] = []
        self._shown: set[asyncio.Task[Any]] = set()
        for task in self._tasks:
            attach = _attach_scope(task)
            origin = self._origin(task)
            if attach is not None and attach._host in live:
                self._children.setdefault(attach, []).append(task)
            elif attach is None and origin is not None and origin[0] in live:
                self._loose.setdefault(origin[0], []).append(task)
            else:
                self._roots.append(task)

    def _origin(self, task: asyncio.Task[Any]) -> tuple[asyncio.Task[Any] | None, _Site] | None:
        if not self._debug:
            return None
        return self._loop._diag_origin(task)  # type: ignore[attr-defined,no-any-return]

    def lines(self) -> Iterator[str]:
        backend = getattr(self._loop, "scopeloop_backend", type(self._loop).__name__)
        debug = ", debug" if self._debug else ""
        count = len(self._tasks)
        yield f"scopeloop task tree: {count} task{'s' if count != 1 else ''} ({backend} backend{debug})"
        for root in self._roots:
            yield from _render(self._task_node(root))
        for task in self._tasks:  # anything a broken structure would hide
            if task not in self._shown:
                yield from _render(self._task_node(task))

    def _task_node(self, task: asyncio.Task[Any], loose: bool = False) -> _Node:
        self._shown.add(task)
        frames = _frames(task, running=task is self._current)
        text = f"task {task.get_name()!r} {self._state(task)}"
        if frames:
            inner = frames[-1]
            text += f" at {_site_text(_frame_site(inner))}"
            if inner.f_code.co_filename.startswith(_INTERNAL_DIRS):
                outer = next((f for f in reversed(frames)
                              if not f.f_code.co_filename.startswith(_INTERNAL_DIRS)), None)
                if outer is not None:
                    text += f", called from {_site_text(_frame_site(outer))}"
        notes = []
        cancelling_scope = getattr(task, "_cancelling_scope", None)
        scope = cancelling_scope() if cancelling_scope is not None else None
        if scope is not None:
            notes.append(f"cancelled by scope {id(scope):x}{_reason(scope)}")
        if task.cancelling():
            notes.append(f"cancel() requested {task.cancelling()}x")
        origin = self._origin(task)
        if origin is not None:
            notes.append(f"created at {_site_text(origin[1])}")
        if loose:
            notes.append("outside any task group")
        if notes:
            text += "; " + "; ".join(notes)

        children: list[_Node] = []
        chain = _own_scopes(task)
        if chain:
            children.append(self._scope_node(chain, 0))
        if self._debug:
            for pending in self._loop._diag_records(task):  # type: ignore[attr-defined]
                children.append((self._pending_text(pending), []))
        for child in self._loose.get(task, ()):
            if child not in self._shown:
                children.append(self._task_node(child, loose=True))
        return text, children

    def _scope_node(self, chain: list[CancelScope], index: int) -> _Node:
        scope = chain[index]
        attributes = []
        spawned = self._children.get(scope, [])
        if isinstance(scope, _StarterScope):
            attributes.append("start() waiting for task_status.started()")
        elif scope._spawned is not None:
            attributes.append(f"task group with {len(spawned)} task{'s' if len(spawned) != 1 else ''}")
        if scope._cancel_called:
            attributes.append("cancelled" + _reason(scope))
        if scope._shield:
            attributes.append("shield")
        if scope._deadline != math.inf:
            left = scope._deadline - self._now
            attributes.append(f"deadline in {left:.3f}s" if left >= 0 else f"deadline {-left:.3f}s ago")
        text = f"scope {id(scope):x}" + (": " + ", ".join(attributes) if attributes else "")
        children = [self._task_node(task) for task in spawned if task not in self._shown]
        if index + 1 < len(chain):
            children.append(self._scope_node(chain, index + 1))
        return text, children

    def _state(self, task: asyncio.Task[Any]) -> str:
        if task is self._current:
            return "running"
        return "waiting" if getattr(task, "_fut_waiter", None) is not None else "ready"

    def _pending_text(self, record: _Record) -> str:
        text = f"pending {record.kind} {_callable_text(record.callback, record.args)}"
        when = getattr(record.target, "when", None)
        if record.kind == "timer" and when is not None:
            text += f" due in {when() - self._now:.3f}s"
        return f"{text}, created at {_site_text(record.site)}"


def _reason(scope: CancelScope) -> str:
    return f" ({scope._cancel_reason})" if scope._cancel_reason else ""


def _frame_site(frame: FrameType) -> _Site:
    return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_qualname


def _render(node: _Node, prefix: str = "", branch: str = "") -> Iterator[str]:
    text, children = node
    yield prefix + branch + text
    if branch:
        prefix += "|  " if branch == "+- " else "   "
    for i, child in enumerate(children):
        yield from _render(child, prefix, "`- " if i == len(children) - 1 else "+- ")
