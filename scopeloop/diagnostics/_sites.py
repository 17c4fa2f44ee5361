"""Where code is and how to describe it: shared by the debug loop and the tree.

State owned here: the directories that count as library code (``_LIBRARY_DIRS``,
computed once at import) and the ``reprlib`` settings for describing callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import reprlib
import site
import sysconfig
from types import FrameType
from typing import Any

from .._cpython import ASYNCIO_DIR as _ASYNCIO_DIR
from ..scope import CancelScope
from ..task import own_scope_bounds

_STACK_DEPTH = 5  # the creation site and up to four callers

# scopeloop/, the parent of this package
_SCOPELOOP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
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

_Site = tuple[str, int, str]  # filename, line, function


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



def _frame_site(frame: FrameType) -> _Site:
    return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_qualname


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



def _attach_scope(task: asyncio.Task[Any]) -> CancelScope | None:
    """The scope ``task`` was spawned into (a task group's), or None."""
    return own_scope_bounds(task)[1]


def _own_scopes(task: asyncio.Task[Any]) -> list[CancelScope]:
    """The scopes ``task`` has entered, outermost first."""
    chain = []
    scope = getattr(task, "_scope", None)
    while scope is not None and scope._host is task:
        chain.append(scope)
        scope = scope._parent
    chain.reverse()
    return chain

