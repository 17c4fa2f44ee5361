"""Run blocking functions in worker threads (AnyIO's ``to_thread`` API).

``await to_thread.run_sync(func, *args)`` runs ``func`` in a worker thread while the
calling task waits; the worker can call back into the loop with ``from_thread``.

Why a pool of our own rather than ``loop.run_in_executor()`` with a
``ThreadPoolExecutor``: the number of threads is governed by CapacityLimiters (the
default one or the caller's), and an abandoned call (``abandon_on_cancel=True``)
gives its token back while its thread keeps running.  An executor with a fixed
``max_workers`` would queue new calls behind abandoned ones even though the limiter
let them in; so a worker is started whenever no idle one exists, and the limiters
alone bound the total.  Workers are daemon threads that retire after ten idle
seconds, so an idle pool never keeps the interpreter alive and a pool needs no
hook on loop shutdown.  Idle workers are reused last-in first-out, which lets the
surplus of a burst age out.

Cancellation of the caller while the thread runs:

* ``abandon_on_cancel=False`` (the default): the call cannot be interrupted, the
  function runs to completion.  The first cancellation that reaches the waiting
  task is noted (``from_thread.check_cancelled()`` raises from then on, and calls
  the worker makes with ``from_thread.run()`` are cancelled), then the task keeps
  waiting behind a shield, so a cancelled scope costs no CPU meanwhile.  A scope
  cancellation is not lost: it is still there when the shield ends, and the
  caller's next checkpoint raises it (``run_sync`` itself returns the result, as in
  Trio and AnyIO).  A native ``Task.cancel()`` is re-raised once the thread is done.
* ``abandon_on_cancel=True``: the CancelledError propagates at once, the limiter
  token is released, and the thread's eventual result is discarded.  Calls the
  worker makes with ``from_thread.run()`` are linked to no caller (as in Trio, where
  they run in the system nursery): the caller does not wait for the thread, so the
  thread's work in the loop is not cut short with it.

Either way the scope's cancellation leaves nothing behind: scope delivery only
cancels the future the task waits on, so ``cancelling()`` never moves.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from ._waitqueue import will_raise
from .scope import CancelScope
from .sync import CapacityLimiter
from .task import Task, current_scope_task, is_scope_cancel

__all__ = ("run_sync", "current_default_thread_limiter")

T = TypeVar("T")

DEFAULT_THREAD_TOKENS = 40
_IDLE_SECONDS = 10.0

# The job the current worker thread is running (read by from_thread).
_local = threading.local()


def current_job() -> _Job | None:
    """The job of the scopeloop worker thread this is, or None in any other thread."""
    job: _Job | None = getattr(_local, "job", None)
    return job

_default_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter] = (
    weakref.WeakKeyDictionary())
_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def current_default_thread_limiter() -> CapacityLimiter:
    """The CapacityLimiter (40 tokens) that ``run_sync`` uses by default on this loop."""
    loop = current_scope_task("to_thread.current_default_thread_limiter()")._loop
    limiter = _default_limiters.get(loop)
    if limiter is None:
        limiter = _default_limiters[loop] = CapacityLimiter(DEFAULT_THREAD_TOKENS)
    return limiter


async def run_sync(func: Callable[..., T], *args: Any, abandon_on_cancel: bool = False,
                   limiter: CapacityLimiter | None = None) -> T:
    """Call ``func(*args)`` in a worker thread and return its result.

    The call runs in a copy of the caller's context (context variables carry over).
    It is a checkpoint: it raises CancelledError without starting the thread if the
    task is already effectively cancelled.  See the module docstring for what
    cancellation does while the thread runs.  ``limiter`` bounds how many threads
    run at once (default: ``current_default_thread_limiter()``, 40 tokens).
    """
    task = current_scope_task("to_thread.run_sync()")
    if not callable(func):
        raise TypeError(f"to_thread.run_sync() expects a callable, not {type(func).__name__}")
    if will_raise(task):
        await asyncio.sleep(0)  # raises CancelledError
    if limiter is None:
        limiter = current_default_thread_limiter()
    async with limiter:
        job = _Job(task, func, args, abandon_on_cancel)
        pool = _pools.get(task._loop)
        if pool is None:
            pool = _pools[task._loop] = _Pool()
        pool.submit(job)
        return await job.wait()  # type: ignore[no-any-return]


class _Job:
    """One call: written by the worker once (the outcome), otherwise by the loop."""

    __slots__ = ("loop", "func", "args", "context", "finished", "result", "error",
                 "waiter", "cancel_requested", "cancel_message", "abandon_on_cancel",
                 "abandoned", "portal_scopes")

    def __init__(self, task: Task, func: Callable[..., Any], args: tuple[Any, ...],
                 abandon_on_cancel: bool) -> None:
        self.loop = task._loop
        self.func = func
        self.args = args
        self.context = contextvars.copy_context()
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        # Written only on the loop thread, read by the worker: a single bool flip.
        self.cancel_requested = False
        self.cancel_message: str = "the to_thread.run_sync() caller was cancelled"
        self.abandon_on_cancel = abandon_on_cancel
        self.abandoned = False
        # CancelScopes of tasks the worker started with from_thread.run().
        self.portal_scopes: set[CancelScope] = set()

    # -- worker side ------------------------------------------------------------

    def run_in_worker(self, before_report: Callable[[], None]) -> None:
        _local.job = self
        result: Any = None
        error: BaseException | None = None
        try:
            result = self.context.run(self.func, *self.args)
        except BaseException as exc:  # everything goes back to the caller
            error = exc
        finally:
            _local.job = None
        before_report()
        try:
            self.loop.call_soon_threadsafe(self._finish, result, error)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting for this result any more

    # -- loop side --------------------------------------------------------------

    def _finish(self, result: Any, error: BaseException | None) -> None:
        self.finished = True
        if self.abandoned:
            return
        self.result, self.error = result, error
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def request_cancel(self, exc: asyncio.CancelledError) -> None:
        """The caller was cancelled: tell the worker and cancel its callbacks into the loop."""
        if exc.args and isinstance(exc.args[0], str):
            # A scope's message, so that the CancelledError which check_cancelled()
            # raises is recognised by that scope if it propagates back to the caller.
            self.cancel_message = exc.args[0]
        self.cancel_requested = True  # written last: the worker reads the message after it
        for scope in list(self.portal_scopes):
            scope.cancel("the to_thread.run_sync() caller was cancelled")

    def caller_cancelled(self) -> bool:
        """Whether the caller has been cancelled, as things stand (also from the worker).

        ``cancel_requested`` is only set once the waiting task has woken with its
        CancelledError, a loop pass after the cancel() that caused it, which a worker
        released by that same pass would not yet see.  The cancel() itself shows at
        once: a native one and a scope's delivery both cancel the future the caller
        waits on.  (Trio's check_cancelled() also sees a cancellation at once.)
        """
        waiter = self.waiter
        return self.cancel_requested or (waiter is not None and waiter.cancelled())

    def cancelled_error(self) -> asyncio.CancelledError:
        """The error a worker raises for its caller's cancellation."""
        return asyncio.CancelledError(self.cancel_message)

    async def wait(self) -> Any:
        loop = self.loop
        if not self.finished:
            self.waiter = loop.create_future()
            try:
                await self.waiter
            except asyncio.CancelledError as exc:
                self.request_cancel(exc)
                if self.abandon_on_cancel:
                    self.abandoned = True
                    raise
                native = None if is_scope_cancel(exc) else exc
                # Only native cancellation passes a shield, so this wait is never
                # re-interrupted by the scope and costs nothing until the thread ends.
                with CancelScope(shield=True):
                    while not self.finished:
                        self.waiter = loop.create_future()
                        try:
                            await self.waiter
                        except asyncio.CancelledError as again:
                            native = again
                if native is not None:
                    raise native from None
            finally:
                self.waiter = None
        error = self.error
        if error is not None:
            self.error = None  # no reference cycle through the traceback
            if self.cancel_requested and isinstance(error, asyncio.CancelledError):
                # check_cancelled() may have raised before request_cancel() knew the
                # scope: carry the scope's message, so that the scope catches it.
                error.args = (self.cancel_message,)
            if isinstance(error, StopIteration):
                # What Trio and AnyIO raise (Python's own message for a StopIteration
                # leaving a coroutine), and which function raised it.
                stopped = RuntimeError("coroutine raised StopIteration")
                stopped.add_note("the function run in a thread by to_thread.run_sync() "
                                 "raised StopIteration, which cannot leave a coroutine")
                raise stopped from error
            raise error
        return self.result


class _Pool:
    """Idle worker threads of one loop, reused last-in first-out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []

    def submit(self, job: _Job) -> None:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _Worker(self)
            worker.start()
        worker.jobs.put(job)

    def make_idle(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def retire(self, worker: _Worker) -> bool:
        """Remove an idle worker; False if it was handed a job meanwhile."""
        with self._lock:
            try:
                self._idle.remove(worker)
            except ValueError:
                return False
            return True


class _Worker(threading.Thread):
    def __init__(self, pool: _Pool) -> None:
        super().__init__(name="scopeloop worker", daemon=True)
        self._pool = pool
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()

    def run(self) -> None:
        jobs, pool = self.jobs, self._pool
        while True:
            try:
                job = jobs.get(timeout=_IDLE_SECONDS)
            except queue.Empty:
                if pool.retire(self):
                    return
                continue  # a job is on its way
            # Idle again before the result is reported, so a caller that submits
            # its next call as soon as it has this result finds this thread.
            job.run_in_worker(self._make_idle)
            del job

    def _make_idle(self) -> None:
        self._pool.make_idle(self)
