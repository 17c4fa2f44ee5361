"""The scopeloop loop classes: a backend's loop (the stdlib selector loop, or uvloop)
whose ``create_task`` builds scopeloop Tasks.

State owned here: the classes themselves and ``_ScopeLoopMixin``'s per-loop
attributes (``_no_task_factory``).  They live apart from loop.py (backend choice,
``new_event_loop``, the policy) so that the debug loops of ``scopeloop.diagnostics``
can subclass them without importing loop.py, which imports diagnostics lazily.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine

from sniffio import thread_local as _sniffio_thread

from ._waitqueue import forget_loop
from .task import Task
from .token import loop_closing

_uvloop: Any
try:
    import uvloop as _uvloop
except ImportError:  # not installed, or not supported on this platform
    _uvloop = None


# The scopeloop loops running now, in any thread: while there are none, no task is a
# scopeloop loop's, which the AnyIO bridge's checks on stock loops rely on (a set:
# add and discard are atomic for loops running in several threads).
running_loops: set[Any] = set()


class _ScopeLoopMixin:
    """What a backend loop needs to host scope-aware tasks."""

    _is_scopeloop = True
    scopeloop_backend: str
    # Task groups read this (an attribute, not a method call) on every spawn.
    _no_task_factory = True
    # The scope a child is being spawned into through a task factory (set and
    # cleared by task.create_task_in, read by an eager task before its first step).
    _spawn_scope: Any = None
    # False: AnyIO code in this loop's tasks keeps AnyIO's own cancel scopes
    # (new_event_loop(anyio_bridge=False); read by scopeloop.anyio_compat).
    _anyio_bridge = True

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
        own = Task(coro, loop=self, name=name, context=context, **kwargs)
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
        running_loops.add(self)
        try:
            super().run_forever()  # type: ignore[misc]
        finally:
            running_loops.discard(self)
            forget_loop(self)
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
