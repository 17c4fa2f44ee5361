"""The AnyIO bridge: AnyIO code running in scopeloop Tasks uses scopeloop's scopes.

Most asyncio code that cares about cancellation reaches it through AnyIO (httpx and
httpcore, Starlette).  On a scopeloop loop that code would run AnyIO's own asyncio
emulation of cancel scopes, which scopeloop's scopes cannot see and which cannot see
them: an ``anyio.CancelScope(shield=True)`` inside a cancelled scopeloop scope would
not hold (httpcore's shielded connection close is interrupted), and
``anyio.current_effective_deadline()`` would not know scopeloop's deadlines.

``install()`` replaces a few classmethods of AnyIO's asyncio backend
(``anyio._backends._asyncio.AsyncIOBackend``) with functions that, when the running
task is a scopeloop Task on a loop with the bridge on, use scopeloop:

* ``create_cancel_scope``: a scopeloop CancelScope that is also an
  ``anyio.CancelScope`` (``anyio.CancelScope.__new__`` asks the backend for it), so
  AnyIO's and scopeloop's scopes are nodes of one tree, nested either way;
* ``current_effective_deadline``, ``checkpoint_if_cancelled``,
  ``cancel_shielded_checkpoint``: scopeloop's;
* ``create_task_group``: scopeloop's TaskGroup, also an ``anyio.abc.TaskGroup``
  (its spawning methods return scopeloop's TaskHandle, which has AnyIO 4.14's API,
  reports ``anyio.TaskHandle.Status`` and raises AnyIO's ``TaskFailed``,
  ``TaskCancelled`` and ``TaskNotFinished``, as subclasses of scopeloop's);
* ``get_current_task``, ``get_running_tasks``: ``anyio.TaskInfo`` objects whose
  ``has_pending_cancellation()`` asks scopeloop; ``wait_all_tasks_blocked``;
* ``run_sync_in_worker_thread``: scopeloop's ``to_thread.run_sync`` (AnyIO's
  ``limiter`` and ``abandon_on_cancel`` honoured), with the worker marked as an
  AnyIO worker thread so that ``anyio.from_thread`` works in it;
* ``check_cancelled``, ``run_async_from_thread``: scopeloop's ``from_thread``
  in such a worker (so a worker's call into the loop is cancelled with its caller).

Everything else is AnyIO's unchanged, and becomes right because the checkpoints it
calls dispatch: AnyIO's Lock, Semaphore, Event and CapacityLimiter, sockets, streams.
``checkpoint`` and ``sleep(0)`` are AnyIO's ``await asyncio.sleep(0)``, which already
is scopeloop's checkpoint in a scopeloop Task: they are replaced, on every loop, by
the bare yield that does the same without two coroutine frames (6-11% of a
checkpoint).  ``run_sync_from_thread`` works once the worker is marked.  For the
rest, any other task, and every stock loop, gets the original classmethod (one type
check per call is the whole cost).

AnyIO internals relied on (checked with AnyIO 4.16.0; ``SUPPORTED`` accepts 4.14-4.16):
the ``AsyncIOBackend`` classmethods above and their signatures, that
``anyio.CancelScope()``, ``create_task_group()``, ``lowlevel`` and ``to_thread``/
``from_thread`` reach the backend through ``get_async_backend()``, that the backend's
own primitives call ``AsyncIOBackend.checkpoint_if_cancelled`` and
``cancel_shielded_checkpoint`` through the class, and
``anyio._core._eventloop.claim_worker_thread`` (what marks an AnyIO worker thread).
Outside the supported versions nothing is patched and a RuntimeWarning says so.

The backend module's own name ``CancelScope`` is replaced too (see
``_backend_scope_class``), so the scopes it makes with its class directly
(``Process.aclose()``'s shield, a listener's accept scope) are scopeloop's as well.
"""

from __future__ import annotations

import asyncio
import math
import os
import warnings
import weakref
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from typing import Any, TypeVar

import anyio
import anyio.abc
import sniffio

import scopeloop

from . import handle, lowlevel, to_thread
from ._backends import running_loops
from ._waitqueue import running_task, schedule_point
from .group import TaskGroup, _GroupScope
from .handle import TaskHandle
from .scope import CancelScope, current_effective_deadline
from .task import Task

__all__ = ("SUPPORTED", "install", "is_installed", "uninstall")

T = TypeVar("T")

SUPPORTED = ">=4.14,<4.17"
_LOWEST, _BEYOND = (4, 14), (4, 17)
ENV_VAR = "SCOPELOOP_ANYIO_BRIDGE"
_INF = math.inf

# name -> the classmethod object found in AsyncIOBackend's dict (put back by uninstall)
_saved: dict[str, Any] = {}
# name -> the original classmethod, bound (what a task outside scopeloop gets)
_original: dict[str, Any] = {}
_claim_worker_thread: Any = None
_stock_scope_class: Any = None  # anyio._backends._asyncio.CancelScope
_backend_class: Any = None
_warned = False
# uninstall() was called: the automatic switch-on (at loop creation) stays off
# until install() is called again.
_opted_out = False
# install() refused (an unsupported AnyIO): loops created later do not ask again
# (reading the installed version costs a metadata lookup).
_refused = False


def _on_bridged_loop(task: object) -> bool:
    """Whether ``task`` is a scopeloop Task on a loop that has the bridge on."""
    return isinstance(task, Task) and getattr(task._loop, "_anyio_bridge", False)


def _current() -> object:
    """The running task, if it may be a scopeloop loop's (else None)."""
    if not running_loops:
        return None
    try:
        return running_task()
    except RuntimeError:  # no running loop: AnyIO's own code decides what that means
        return None


# -- what AnyIO sees: scopes, groups, task information -------------------------------

class _AnyIOScope(CancelScope, anyio.CancelScope):  # type: ignore[misc]
    """A scopeloop CancelScope that AnyIO's code accepts as an ``anyio.CancelScope``.

    scopeloop's methods come first; ``__new__`` is object's, since AnyIO's would
    ask the backend for a scope again.
    """

    def __new__(cls, *, deadline: float = _INF, shield: bool = False) -> _AnyIOScope:
        return object.__new__(cls)


class _AnyIOGroupScope(_GroupScope, anyio.CancelScope):  # type: ignore[misc]
    """A task group's scope (see ``_AnyIOScope``)."""

    def __new__(cls, *, deadline: float = _INF, shield: bool = False) -> _AnyIOGroupScope:
        return object.__new__(cls)


class _TaskFailed(anyio.TaskFailed, handle.TaskFailed):
    """What a bridged handle raises for a failed task: AnyIO's class and scopeloop's."""


class _TaskCancelled(anyio.TaskCancelled, handle.TaskCancelled):
    """What a bridged handle raises for a cancelled task (see ``_TaskFailed``)."""


class _TaskNotFinished(anyio.TaskNotFinished, handle.TaskNotFinished):
    """What a bridged handle raises for a task still running (see ``_TaskFailed``)."""


for _error in (_TaskFailed, _TaskCancelled, _TaskNotFinished):
    # Shown in tracebacks under the name both libraries give it.
    _error.__name__ = _error.__qualname__ = _error.__name__[1:]

# The members are alike by name: a bridged handle reports AnyIO's.
_ANYIO_STATUS = {status: anyio.TaskHandle.Status[status.name] for status in TaskHandle.Status}


class _AnyIOTaskHandle(TaskHandle[T, Any]):
    """scopeloop's TaskHandle, in AnyIO's terms: its ``status`` is one of
    ``anyio.TaskHandle.Status``, and what it raises are AnyIO's exceptions too."""

    Status = anyio.TaskHandle.Status  # type: ignore[assignment]
    _Failed = _TaskFailed
    _Cancelled = _TaskCancelled
    _NotFinished = _TaskNotFinished

    __slots__ = ()

    @property
    def status(self) -> Any:
        return _ANYIO_STATUS[self._status()]


class _AnyIOTaskGroup(TaskGroup, anyio.abc.TaskGroup):  # type: ignore[misc]
    """scopeloop's TaskGroup, usable where AnyIO code expects an anyio.abc.TaskGroup."""

    _handle = _AnyIOTaskHandle
    # AnyIO's groups do not start children eagerly under asyncio's eager task
    # factory (they call its task class directly): code written for them expects that.
    _lazy_children = True

    def __init__(self) -> None:
        super().__init__()
        self.cancel_scope = object.__new__(_AnyIOGroupScope)


class _AnyIOTaskInfo(anyio.TaskInfo):
    """``anyio.TaskInfo`` of a scopeloop Task: scopeloop knows its cancellation."""

    __slots__ = ("_task",)

    def __init__(self, task: Task) -> None:
        info = lowlevel.TaskInfo(task)
        # (AnyIO's own TaskInfo passes get_coro() too, which typeshed allows to be None
        # on 3.12+: an eager task that finished in its first step has no coroutine.)
        super().__init__(info.id, info.parent_id, info.name,
                         info.coro)  # type: ignore[arg-type, unused-ignore]
        self._task = weakref.ref(task)  # (as AnyIO's: it must not keep the task)

    def has_pending_cancellation(self) -> bool:
        """True if the task's next checkpoint raises CancelledError."""
        task = self._task()
        return task is not None and lowlevel.TaskInfo(task).has_pending_cancellation()


def _task_info(task: asyncio.Task[Any]) -> anyio.TaskInfo:
    if isinstance(task, Task):
        return _AnyIOTaskInfo(task)
    from anyio._backends._asyncio import AsyncIOTaskInfo  # (loaded: it calls us)
    return AsyncIOTaskInfo(task)


def _backend_scope_class(stock: type) -> type:
    """What AnyIO's backend module calls ``CancelScope`` while the bridge is installed.

    The backend makes some scopes with its own class, not through
    ``create_cancel_scope`` (``Process.aclose()``'s shield, a listener's accept
    scope, ``start()``'s wait for a handle): this name makes those scopeloop's in
    bridged tasks too.  It never has instances of its own: ``__new__`` returns a
    finished scope, either scopeloop's or the stock class's.
    """
    class _DispatchingCancelScope(stock):  # type: ignore[misc]
        __slots__ = ()

        def __new__(cls, *, deadline: float = _INF, shield: bool = False) -> Any:
            return _create_cancel_scope(cls, deadline=deadline, shield=shield)

    return _DispatchingCancelScope


# -- the replacements (each takes the backend class first, as a classmethod) --------

def _create_cancel_scope(cls: type, *, deadline: float = _INF,
                         shield: bool = False) -> anyio.CancelScope:
    # The hot path of every `with anyio.CancelScope()` on every loop, so
    # _on_bridged_loop(_current()) is written out here (a marked copy: keep them in
    # sync).  While no scopeloop loop runs, one set's truth value decides (on 3.11, looking up the
    # running loop costs a getpid() system call, more than the 5% issue 16 allows).
    if running_loops:
        try:
            task = running_task()
        except RuntimeError:
            task = None
        if isinstance(task, Task) and getattr(task._loop, "_anyio_bridge", False):
            scope = object.__new__(_AnyIOScope)
            if deadline != _INF or shield:
                CancelScope.__init__(scope, deadline=deadline, shield=shield)
            return scope
    # What the original classmethod does (its whole body), without its call: that
    # second Python frame would cost as much again.
    return _stock_scope_class(deadline=deadline, shield=shield)  # type: ignore[no-any-return]


def _checkpoint(cls: type) -> Awaitable[None]:
    # AnyIO's is an `async def` awaiting asyncio.sleep(0): two coroutine frames around
    # one bare yield, which is all a checkpoint is to any asyncio Task (a scopeloop
    # Task raises at that yield when it is effectively cancelled).  The same on every
    # loop, so no dispatch: only the frames are saved.
    return schedule_point()


def _sleep(cls: type, delay: float) -> Awaitable[None]:
    return schedule_point() if delay <= 0 else asyncio.sleep(delay)


def _current_effective_deadline(cls: type) -> float:
    if _on_bridged_loop(_current()):
        return current_effective_deadline()
    return _original["current_effective_deadline"]()  # type: ignore[no-any-return]


async def _checkpoint_if_cancelled(cls: type) -> None:
    if _on_bridged_loop(_current()):
        await lowlevel.checkpoint_if_cancelled()
    else:
        await _original["checkpoint_if_cancelled"]()


async def _cancel_shielded_checkpoint(cls: type) -> None:
    if _on_bridged_loop(_current()):
        await lowlevel.cancel_shielded_checkpoint()
    else:
        await _original["cancel_shielded_checkpoint"]()


def _create_task_group(cls: type) -> anyio.abc.TaskGroup:
    if _on_bridged_loop(_current()):
        return _AnyIOTaskGroup()
    return _original["create_task_group"]()  # type: ignore[no-any-return]


def _get_current_task(cls: type) -> anyio.TaskInfo:
    task = _current()
    if _on_bridged_loop(task):
        return _AnyIOTaskInfo(task)  # type: ignore[arg-type]
    return _original["get_current_task"]()  # type: ignore[no-any-return]


def _get_running_tasks(cls: type) -> Sequence[anyio.TaskInfo]:
    if _on_bridged_loop(_current()):
        return [_task_info(task) for task in asyncio.all_tasks() if not task.done()]
    return _original["get_running_tasks"]()  # type: ignore[no-any-return]


async def _wait_all_tasks_blocked(cls: type) -> None:
    if _on_bridged_loop(_current()):
        await lowlevel.wait_all_tasks_blocked()
    else:
        await _original["wait_all_tasks_blocked"]()


async def _run_sync_in_worker_thread(cls: type, func: Callable[..., T], args: tuple[Any, ...],
                                     abandon_on_cancel: bool = False,
                                     limiter: Any = None) -> T:
    task = _current()
    if not _on_bridged_loop(task):
        return await _original["run_sync_in_worker_thread"](  # type: ignore[no-any-return]
            func, args, abandon_on_cancel=abandon_on_cancel, limiter=limiter)
    if limiter is None:
        # AnyIO's default limiter, so that code tuning its total_tokens still governs
        # anyio.to_thread.run_sync (any object usable with `async with` will do).
        limiter = cls.current_default_thread_limiter()  # type: ignore[attr-defined]
    loop = task._loop  # type: ignore[attr-defined]
    return await to_thread.run_sync(_in_anyio_worker, loop, func, args,
                                    abandon_on_cancel=abandon_on_cancel, limiter=limiter)


def _in_anyio_worker(loop: asyncio.AbstractEventLoop, func: Callable[..., T],
                     args: tuple[Any, ...]) -> T:
    """Run ``func(*args)`` in a scopeloop worker marked as an AnyIO worker thread."""
    # (The job runs in a copy of the caller's context: this setting ends with it.)
    # As in AnyIO's own workers, sniffio finds no async library in the thread.
    sniffio.current_async_library_cvar.set(None)
    with _claim_worker_thread(_backend_class, loop):
        return func(*args)


def _in_scopeloop_worker() -> bool:
    return to_thread.current_job() is not None


def _check_cancelled(cls: type) -> None:
    if _in_scopeloop_worker():
        scopeloop.from_thread.check_cancelled()
    else:
        _original["check_cancelled"]()


def _run_async_from_thread(cls: type, func: Callable[..., Any], args: tuple[Any, ...],
                           token: object) -> Any:
    if token is None and _in_scopeloop_worker():
        # Linked to the run_sync() caller's cancellation.  A cancellation comes out
        # as the caller's CancelledError (AnyIO's own turns it into
        # concurrent.futures.CancelledError): as on Trio, if the thread lets it
        # propagate, the caller's scope catches it.
        return scopeloop.from_thread.run(func, *args)
    return _original["run_async_from_thread"](func, args, token)


_PATCHES: dict[str, Callable[..., Any]] = {
    "checkpoint": _checkpoint,
    "sleep": _sleep,
    "create_cancel_scope": _create_cancel_scope,
    "current_effective_deadline": _current_effective_deadline,
    "checkpoint_if_cancelled": _checkpoint_if_cancelled,
    "cancel_shielded_checkpoint": _cancel_shielded_checkpoint,
    "create_task_group": _create_task_group,
    "get_current_task": _get_current_task,
    "get_running_tasks": _get_running_tasks,
    "wait_all_tasks_blocked": _wait_all_tasks_blocked,
    "run_sync_in_worker_thread": _run_sync_in_worker_thread,
    "check_cancelled": _check_cancelled,
    "run_async_from_thread": _run_async_from_thread,
}


# -- switching on and off -------------------------------------------------------------

def _anyio_version() -> str:
    return metadata.version("anyio")


def _version_supported() -> bool:
    """True if the installed AnyIO is one the bridge was checked with; else warn once."""
    version = _anyio_version()
    try:
        numbers = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        numbers = ()
    if _LOWEST <= numbers < _BEYOND:
        return True
    _warn_once(f"scopeloop's AnyIO bridge supports anyio{SUPPORTED}, but anyio {version} "
               f"is installed, so it is left untouched: on scopeloop loops AnyIO keeps its "
               f"own cancel scopes, which do not see scopeloop's (shields, deadlines). "
               f"Install a supported AnyIO, or set {ENV_VAR}=0 to silence this warning.")
    return False


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def install() -> bool:
    """Make AnyIO's asyncio backend use scopeloop in scopeloop Tasks.

    Idempotent.  Returns False (after a RuntimeWarning) if the installed AnyIO is
    not one of ``SUPPORTED``; AnyIO is then left untouched.  scopeloop loops call
    this themselves (see ``new_event_loop(anyio_bridge=...)``).
    """
    global _opted_out, _refused, _claim_worker_thread, _backend_class, _stock_scope_class
    _opted_out = False
    if _saved:
        return True
    _refused = True  # (until it succeeds)
    if not _version_supported():
        return False
    from anyio._backends import _asyncio
    from anyio._core import _eventloop

    backend = _asyncio.AsyncIOBackend
    missing = [name for name in _PATCHES if not isinstance(vars(backend).get(name), classmethod)]
    if missing or not hasattr(_eventloop, "claim_worker_thread"):
        _warn_once(f"scopeloop's AnyIO bridge: this AnyIO's asyncio backend lacks "
                   f"{', '.join(missing) or 'claim_worker_thread'}; AnyIO is left untouched "
                   f"(set {ENV_VAR}=0 to silence this warning)")
        return False
    _claim_worker_thread = _eventloop.claim_worker_thread
    _stock_scope_class = _asyncio.CancelScope
    _backend_class = backend
    for name, replacement in _PATCHES.items():
        _saved[name] = vars(backend)[name]
        _original[name] = getattr(backend, name)
        setattr(backend, name, classmethod(replacement))
    _asyncio.CancelScope = _backend_scope_class(_stock_scope_class)  # type: ignore[misc,assignment]
    _refused = False
    return True


def uninstall() -> None:
    """Put AnyIO's original classmethods back (idempotent).

    Loops created afterwards do not switch the bridge on again; ``install()`` does.
    """
    global _opted_out
    _opted_out = True
    if not _saved:
        return
    for name, original in _saved.items():
        setattr(_backend_class, name, original)
    from anyio._backends import _asyncio
    _asyncio.CancelScope = _stock_scope_class  # type: ignore[misc]
    _saved.clear()
    _original.clear()


def is_installed() -> bool:
    """Whether AnyIO's asyncio backend currently dispatches to scopeloop."""
    return bool(_saved)


def _install_automatically() -> None:
    """Called when a scopeloop loop is created (or AnyIO's backend is imported after)."""
    if not (_saved or _opted_out or _refused) and os.environ.get(ENV_VAR, "") != "0":
        install()
