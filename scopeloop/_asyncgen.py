"""Naming the async generator behind a misused cancel scope or task group.

An async generator that yields inside ``with move_on_after(...)`` or ``async with
create_task_group()`` leaves that scope open in whichever task iterated it, and
the scope is exited by whichever task resumes or closes the generator later (often
the loop's finalizer, in a task of its own).  The error that follows (a scope
exited in another task, or out of order) is correct but points at the symptom;
this module finds the generator, so the message can name it and say what to do.

Everything here runs on the error path only: a scope's entry records nothing.
Two places can hold the culprit:

* the code exiting the scope is itself the generator (it was resumed or closed in
  another task, or after its task had entered other scopes): the nearest frame
  outside scopeloop is the generator's;
* the generator is suspended at its ``yield`` with the scope still open, and some
  outer scope is now exiting: the scope is referenced from the suspended frame
  (its ``__exit__`` is on the frame's stack), which the garbage collector's
  referrer lists reveal.  That scan is proportional to the heap, so it is kept
  to a few steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import types
import warnings
import weakref
from collections.abc import Iterable
from inspect import CO_ASYNC_GENERATOR
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# Referrer hops from a scope to the generator holding it: scope -> its TaskGroup
# (or a bound __exit__) -> the generator; one more for an instance __dict__.
_MAX_HOPS = 3
_MAX_SCANS = 12

# Scopes whose exit failed because an async generator exited them in the wrong task.
_noted: weakref.WeakKeyDictionary[object, tuple[types.CodeType, int]] = (
    weakref.WeakKeyDictionary())


def asyncgen_hint(what: str, scope: object, open_scopes: Iterable[object] = ()) -> str:
    """A sentence to append to a misuse error about ``what`` (``scope``), or "".

    ``open_scopes`` are scopes still open inside the one being exited: they may
    belong to a generator suspended at a ``yield``, or to one that was resumed or
    closed in another task (noted then, so that the error its own task meets
    later, when it exits an outer scope, can say so too).
    """
    try:
        frame = _exiting_frame()
        if frame is not None and frame.f_code.co_flags & CO_ASYNC_GENERATOR:
            _noted[scope] = (frame.f_code, frame.f_lineno)
            return _advice(what, frame.f_code, frame.f_lineno, "is exited")
        for inner in open_scopes:
            if inner in _noted:
                code, line = _noted[inner]
                return _advice("inner scope", code, line, "was left open")
            agen = _holder(inner)
            if agen is not None:
                frame = agen.ag_frame
                line = frame.f_lineno if frame is not None else agen.ag_code.co_firstlineno
                return _advice(what, agen.ag_code, line, "is still open")
    except Exception:  # a hint must never hide the error it explains
        pass
    return ""


def _exiting_frame() -> types.FrameType | None:
    """The innermost frame outside scopeloop: the code leaving the scope."""
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return frame


def _holder(scope: object) -> types.AsyncGeneratorType[object, object] | None:
    """A suspended async generator whose frame holds ``scope`` open, if any."""
    level: list[object] = [scope]
    seen = {id(scope)}
    scans = 0
    for _ in range(_MAX_HOPS):
        above: list[object] = []
        for obj in level:
            if scans == _MAX_SCANS:
                return None
            scans += 1
            for ref in gc.get_referrers(obj):
                if isinstance(ref, types.AsyncGeneratorType) and not ref.ag_running:
                    return ref
                if id(ref) in seen or isinstance(ref, types.FrameType) or ref is level \
                        or ref is above:
                    continue
                seen.add(id(ref))
                if isinstance(ref, (types.MethodType, dict)) or _has_scope_of(ref, obj):
                    above.append(ref)
        level = above
    return None


def _has_scope_of(ref: object, obj: object) -> bool:
    """True for a task group (or anything) whose cancel_scope is ``obj``."""
    return getattr(ref, "cancel_scope", None) is obj


def _advice(what: str, code: types.CodeType, line: int, state: str) -> str:
    name = getattr(code, "co_qualname", code.co_name)
    return (
        f" The {what} {state} in the async generator {name}() "
        f"({code.co_filename}:{line}), which yielded inside it: a scope stays open in the "
        f"task that iterated the generator, and is exited by whichever task resumes or "
        f"closes it. Don't yield inside a cancel scope or task group in an async "
        f"generator, or have one task iterate and close it: "
        f"'async with contextlib.aclosing(gen) as g: async for x in g: ...'. "
        f"For a pytest async fixture, run pytest with --scopeloop, which runs each "
        f"async generator fixture in one task.")


# -- debug mode: a warning at the yield itself ------------------------------------
#
# A debug loop hands every async generator it sees start to watch_yields().  On
# Python 3.12+, sys.monitoring then reports the yields, resumptions and starts of
# that generator's code only (local events: other code runs at full speed).  The
# scope that was innermost when the generator started or was resumed after a
# yield is its baseline; a real yield (not an await passing a future up) while a
# scope below the baseline is open means the generator yields inside a scope it
# entered.  Generators driven by contextlib.asynccontextmanager, or run as pytest
# fixtures by the plugin, are meant to do exactly that and are not watched.

_EXEMPT_CALLERS: set[types.CodeType] = {
    contextlib._AsyncGeneratorContextManager.__aenter__.__code__}
_TOOL_NAME = "scopeloop"
_WRAPPED_NAME = "async_generator_wrapped_value"  # what a real yield hands the caller


class _Watched:
    __slots__ = ("baseline", "after_yield")

    def __init__(self) -> None:
        self.baseline: object = None
        self.after_yield = False


_watched: dict[int, _Watched] = {}  # by id() of the generator's frame
_watched_codes: set[types.CodeType] = set()
_tool: int | None = None
_monitoring: Any = getattr(sys, "monitoring", None)  # Python 3.12+


def exempt_caller(code: types.CodeType) -> None:
    """Generators first iterated from ``code`` may yield inside scopes."""
    _EXEMPT_CALLERS.add(code)


def watch_yields(agen: types.AsyncGeneratorType[object, object]) -> None:
    """Debug mode: warn when ``agen`` yields inside a scope it entered (3.12+)."""
    if _monitoring is None or not _start_monitoring():
        return
    caller: types.FrameType | None = sys._getframe(1)
    for _ in range(4):
        if caller is None:
            break
        if caller.f_code in _EXEMPT_CALLERS:
            return
        caller = caller.f_back
    frame = agen.ag_frame
    if frame is None:
        return
    key = id(frame)
    _watched[key] = _Watched()
    weakref.finalize(agen, _watched.pop, key, None)
    code = agen.ag_code
    if code not in _watched_codes:
        _watched_codes.add(code)
        events = _monitoring.events
        _monitoring.set_local_events(
            _tool, code, events.PY_START | events.PY_RESUME | events.PY_YIELD)


def _start_monitoring() -> bool:
    global _tool
    if _tool is not None:
        return True
    monitoring = _monitoring
    for tool in (3, 4):  # ids no standard tool claims
        if monitoring.get_tool(tool) is None:
            monitoring.use_tool_id(tool, _TOOL_NAME)
            events = monitoring.events
            monitoring.register_callback(tool, events.PY_START, _on_start)
            monitoring.register_callback(tool, events.PY_RESUME, _on_resume)
            monitoring.register_callback(tool, events.PY_YIELD, _on_yield)
            _tool = tool
            return True
    return False


def _innermost_scope() -> object:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return None
    return getattr(task, "_scope", None)


def _on_start(code: types.CodeType, offset: int) -> object:
    state = _watched.get(id(sys._getframe(1)))
    if state is not None:
        state.baseline = _innermost_scope()
    return None


def _on_resume(code: types.CodeType, offset: int) -> object:
    state = _watched.get(id(sys._getframe(1)))
    if state is not None and state.after_yield:
        state.after_yield = False
        state.baseline = _innermost_scope()
    return None


def _on_yield(code: types.CodeType, offset: int, value: object) -> object:
    if type(value).__name__ != _WRAPPED_NAME:
        return None  # an await inside the generator
    frame = sys._getframe(1)
    state = _watched.get(id(frame))
    if state is None:
        return None
    state.after_yield = True
    scope = _innermost_scope()
    baseline = state.baseline
    if scope is baseline:
        return None
    while scope is not None and scope is not baseline:
        scope = getattr(scope, "_parent", None)
    if scope is baseline:  # the open scopes below the baseline are the generator's
        name = getattr(code, "co_qualname", code.co_name)
        warnings.warn(
            f"async generator {name}() yielded inside a cancel scope or task group it "
            f"entered ({code.co_filename}:{frame.f_lineno}): while it is suspended there, "
            f"the scope stays open in the task iterating it (that code runs inside the "
            f"scope and is cancelled with it), and resuming or closing the generator from "
            f"another task exits the scope in the wrong task. Move the yield out of the "
            f"scope; at least iterate and close the generator in one task: "
            f"'async with contextlib.aclosing(gen) as g: async for x in g: ...'",
            RuntimeWarning, stacklevel=2)
    return None
