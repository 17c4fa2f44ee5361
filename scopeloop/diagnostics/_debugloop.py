"""The debug loop: records who creates every timer, callback and task, and reports
leftovers (``LeftoverWarning``); see the package docstring.

State owned here: on each debug loop instance, ``_diag_owned`` (task -> the records
of what it created that are still pending) and ``_diag_tasks`` (task -> who created
it and where, weakly); each ``_Record``'s ``fired``/``reported`` flags; and the
debug loop classes, one per backend class.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from .._asyncgen import watch_yields
from .._backends import AsyncioEventLoop
from .._cpython import ASYNCIO_TASKS as _ASYNCIO_TASKS
from .._cpython import BASE_EVENTS as _BASE_EVENTS
from .._cpython import not_started as _not_started
from .._cpython import task_step_type
from ..scope import CancelScope
from ..task import _NO_CONTEXT
from ._sites import (
    _SCOPELOOP_DIR,
    _is_library,
    _attach_scope,
    _callable_text,
    _coro_name,
    _program_frame,
    _site_text,
    _Site,
    _stack_from,
    _task_top,
)
from ._tree import _signal_from_env, print_tree_on_signal

try:
    from .._backends import UVLoopEventLoop
except ImportError:  # uvloop is not installed
    UVLoopEventLoop = None  # type: ignore[assignment,misc]

# What a C Task schedules for its next step (found once, not by its type's name).
_TASK_STEP: Any = task_step_type()

_T = TypeVar("_T")


class LeftoverWarning(ResourceWarning):
    """A timer, callback or task outlived the task that created it (debug mode)."""


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

    _scopeloop_debug = True  # how the tree tells a debug loop
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
        return self._diag_schedule(sys._getframe(1), "callback",
                                   super().call_soon, callback, args, context)  # type: ignore[misc]

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any,
                   context: Any = None) -> asyncio.TimerHandle:
        schedule = functools.partial(super().call_later, delay)  # type: ignore[misc]
        return self._diag_schedule(sys._getframe(1), "timer",  # type: ignore[return-value]
                                   schedule, callback, args, context)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: Any = None) -> asyncio.TimerHandle:
        schedule = functools.partial(super().call_at, when)  # type: ignore[misc]
        return self._diag_schedule(sys._getframe(1), "timer",  # type: ignore[return-value]
                                   schedule, callback, args, context)

    def _diag_schedule(self, caller: FrameType, kind: str, schedule: Callable[..., Any],
                       callback: Callable[..., Any], args: tuple[Any, ...],
                       context: Any) -> asyncio.Handle:
        """Schedule ``callback`` with the loop's own method, recording who did."""
        record = self._diag_handle(kind, callback, args, context, caller)
        if record is not None:
            callback = _tracking(self, record, callback)
        handle = schedule(callback, *args, context=context)
        return self._diag_created(handle, record, caller)

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

