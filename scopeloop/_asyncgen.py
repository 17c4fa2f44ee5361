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

import gc
import os
import sys
import types
import weakref
from collections.abc import Iterable
from inspect import CO_ASYNC_GENERATOR

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
