"""The text tree of a loop's tasks, cancel scopes and task groups (``format_tree``,
``print_tree``, ``print_tree_on_signal``); the format is in the package docstring.

State owned here: none beyond one ``_Tree`` snapshot per call.  It works on any
scopeloop loop; on a debug loop it adds what the loop recorded (who created a task,
pending timers and callbacks), read through the loop's ``_diag_*`` methods.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from .._cpython import await_frames
from ..group import _StarterScope
from ..handle import _HandleScope
from ..scope import CancelScope
from ._sites import (
    _INTERNAL_DIRS,
    _Site,
    _attach_scope,
    _callable_text,
    _frame_site,
    _own_scopes,
    _site_text,
)

if TYPE_CHECKING:
    from ._debugloop import _Record

_ENV_SIGNAL = "SCOPELOOP_TREE_SIGNAL"
_SIGUSR1: int | None = getattr(signal, "SIGUSR1", None)  # absent on Windows


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
        self._debug = getattr(loop, "_scopeloop_debug", False)
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
        elif isinstance(scope, _HandleScope):
            attributes.append("the task's handle")
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




def _render(node: _Node, prefix: str = "", branch: str = "") -> Iterator[str]:
    text, children = node
    yield prefix + branch + text
    if branch:
        prefix += "|  " if branch == "+- " else "   "
    for i, child in enumerate(children):
        yield from _render(child, prefix, "`- " if i == len(children) - 1 else "+- ")

