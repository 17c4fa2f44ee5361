"""The scopeloop event loops, backend choice, and the event loop policy.

A scopeloop loop is a real asyncio loop (the stdlib selector loop, or uvloop) whose
``create_task`` builds scopeloop Tasks.  Everything else is the backend's own code,
so programs that never touch a scope see stock behaviour.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Coroutine

from sniffio import thread_local as _sniffio_thread

from ._cpython import POLICY_BASE
from .task import Task
from .token import loop_closing

_uvloop: Any
try:
    import uvloop as _uvloop
except ImportError:  # not installed, or not supported on this platform
    _uvloop = None

__all__ = ("new_event_loop", "EventLoopPolicy", "BACKENDS", "default_backend")

BACKENDS = ("uvloop", "asyncio")
_ENV_BACKEND = "SCOPELOOP_BACKEND"
_ENV_DEBUG = "SCOPELOOP_DEBUG"


class _ScopeLoopMixin:
    """What a backend loop needs to host scope-aware tasks."""

    _is_scopeloop = True
    scopeloop_backend: str
    # Task groups read this (an attribute, not a method call) on every spawn.
    _no_task_factory = True

    def set_task_factory(self, factory: Any) -> None:
        """Set the task factory, as on the backend loop (None: scopeloop Tasks)."""
        super().set_task_factory(factory)  # type: ignore[misc]
        self._no_task_factory = factory is None

    def create_task(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None,
                    context: Any = None, **kwargs: Any) -> asyncio.Task[Any]:
        """Schedule ``coro`` as a scopeloop Task (or via the installed task factory)."""
        factory = self.get_task_factory()  # type: ignore[attr-defined]
        if factory is not None:
            # Called as the stdlib loop calls it: uvloop also passes eager_start=None,
            # which the stdlib's eager factory of 3.12/3.13.0 rejects.
            if self.is_closed():  # type: ignore[attr-defined]
                raise RuntimeError("Event loop is closed")
            if context is None:
                task: asyncio.Task[Any] = factory(self, coro, **kwargs)
            else:
                task = factory(self, coro, context=context, **kwargs)
            if name is not None:
                task.set_name(name)
            try:
                return task
            finally:
                # An eager task's first step ran below this frame: if it failed, its
                # traceback keeps this frame, which must not keep the task (a
                # reference cycle; CPython's own create_task does the same, gh-128552).
                del task
        if self.is_closed():  # type: ignore[attr-defined]
            raise RuntimeError("Event loop is closed")
        own = Task(coro, loop=self, name=name, context=context, **kwargs)  # type: ignore[arg-type]
        if own._source_traceback:  # type: ignore[attr-defined]
            del own._source_traceback[-1]  # type: ignore[attr-defined]
        return own

    def close(self) -> None:
        """Close the loop, as on the backend loop.

        Calls that other threads made into this loop through an EventLoopToken and
        that have not completed get RunFinishedError instead of waiting forever.
        """
        super().close()  # type: ignore[misc]
        loop_closing(self)  # type: ignore[arg-type]

    def run_forever(self) -> None:
        """Run until ``stop()``; sniffio reports "asyncio" meanwhile, in callbacks too."""
        # sniffio recognises asyncio only through current_task(), which is None in
        # plain callbacks (protocol methods, call_soon, done-callbacks), so AnyIO or
        # httpx code called from them would fail.  Like Trio, name the library for
        # this thread while the loop runs (worker threads are not affected).
        previous = _sniffio_thread.name
        _sniffio_thread.name = "asyncio"
        try:
            super().run_forever()  # type: ignore[misc]
        finally:
            _sniffio_thread.name = previous


class AsyncioEventLoop(_ScopeLoopMixin, asyncio.SelectorEventLoop):  # type: ignore[misc]
    """scopeloop over the stdlib selector event loop."""

    scopeloop_backend = "asyncio"

    def __repr__(self) -> str:
        return f"<scopeloop.AsyncioEventLoop running={self.is_running()} closed={self.is_closed()}>"


if _uvloop is not None:
    class UVLoopEventLoop(_ScopeLoopMixin, _uvloop.Loop):  # type: ignore[misc]
        """scopeloop over uvloop."""

        scopeloop_backend = "uvloop"

        def __repr__(self) -> str:
            return (f"<scopeloop.UVLoopEventLoop running={self.is_running()} "
                    f"closed={self.is_closed()}>")


def default_backend() -> str:
    """The backend ``new_event_loop()`` uses when none is named."""
    return _resolve_backend(None)


def _resolve_backend(backend: str | None) -> str:
    source = "backend"
    if backend is None:
        backend = os.environ.get(_ENV_BACKEND) or None
        source = f"environment variable {_ENV_BACKEND}"
    if backend is None:
        return "uvloop" if _uvloop is not None else "asyncio"
    if backend not in BACKENDS:
        raise ValueError(f"unknown scopeloop {source} {backend!r}; valid backends are "
                         f"{', '.join(map(repr, BACKENDS))}")
    if backend == "uvloop" and _uvloop is None:
        raise ValueError(f"{source} 'uvloop' was asked for but uvloop is not installed "
                         f"(pip install uvloop), or choose 'asyncio'")
    return backend


def _debug_from_env() -> bool:
    return os.environ.get(_ENV_DEBUG, "") not in ("", "0")


def new_event_loop(backend: str | None = None, *, debug: bool | None = None
                   ) -> asyncio.AbstractEventLoop:
    """Create a new scopeloop event loop.

    ``backend`` is ``"uvloop"`` (the default where uvloop is installed) or
    ``"asyncio"`` (the stdlib selector loop); when None, the environment variable
    ``SCOPELOOP_BACKEND`` decides.  ``debug=True`` (or ``SCOPELOOP_DEBUG=1``) turns
    on asyncio's debug mode and scopeloop's diagnostics (see scopeloop.diagnostics).
    """
    name = _resolve_backend(backend)
    if debug is None:
        debug = _debug_from_env()
    loop: asyncio.AbstractEventLoop
    if debug:
        # Diagnostics live in debug-only subclasses, so that a loop without debug
        # runs the backend's own call_soon/call_later untouched (zero cost).
        from .diagnostics import debug_loop_class
        loop = debug_loop_class(name)()
        loop.set_debug(True)
    elif name == "uvloop":
        loop = UVLoopEventLoop()
    else:
        loop = AsyncioEventLoop()
    return loop


_NO_POLICY = ("asyncio's event loop policy API is not available on this Python "
              "(deprecated in 3.14, removed in 3.16), so scopeloop.EventLoopPolicy "
              "cannot be used; run the program with scopeloop.run(main), "
              "asyncio.run(main(), loop_factory=scopeloop.new_event_loop) or "
              "asyncio.Runner(loop_factory=scopeloop.new_event_loop)")


class _NoPolicy:
    """Stands in for the stdlib policy base where there is none (3.16)."""

    def __init__(self) -> None:
        raise RuntimeError(_NO_POLICY)


# 3.14 deprecates the public policy names: POLICY_BASE is the private alias there,
# so importing scopeloop does not warn (installing the policy still does).
class EventLoopPolicy(POLICY_BASE or _NoPolicy):  # type: ignore[misc]
    """An event loop policy whose loops are scopeloop loops.

    ``asyncio.set_event_loop_policy(scopeloop.EventLoopPolicy())`` makes
    ``asyncio.run``, ``asyncio.Runner`` and ``asyncio.new_event_loop`` use scopeloop.
    """

    def __init__(self, backend: str | None = None) -> None:
        super().__init__()  # (raises where the policy API is gone)
        self._backend = None if backend is None else _resolve_backend(backend)

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop(self._backend)
