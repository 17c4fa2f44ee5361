"""Call back into the loop from a worker thread (AnyIO's ``from_thread`` API).

Only threads started by ``to_thread.run_sync()`` can use these: such a worker knows
its loop and the call it is running through a thread-local that ``to_thread`` sets.

* ``run(async_fn, *args)`` runs ``async_fn(*args)`` as a task on the loop and blocks
  the worker until it finishes.  The task runs inside a cancel scope that is
  cancelled when the ``run_sync()`` caller is cancelled, so a worker whose caller
  went away cannot hold the loop's work hostage.
* ``run_sync(func, *args)`` calls ``func(*args)`` in the loop thread.
* ``check_cancelled()`` raises CancelledError once the ``run_sync()`` caller has
  been cancelled.

Thread safety: the worker never reads the scope tree.  The loop thread sets a
flag on the call when a cancellation reaches the waiting task (one bool write), and
the worker only reads that flag; everything else crosses threads through
``call_soon_threadsafe`` and a ``concurrent.futures.Future``.  Both calls run in a
copy of the worker's context, so context variables carry over from the original
caller through the thread and back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .scope import CancelScope
from .to_thread import _Job, _local

__all__ = ("run", "run_sync", "check_cancelled")

T = TypeVar("T")


def _current_job(api: str) -> _Job:
    job: _Job | None = getattr(_local, "job", None)
    if job is None:
        raise RuntimeError(
            f"from_thread.{api} can only be called from a worker thread started by "
            f"scopeloop.to_thread.run_sync(); in the event loop thread, await the "
            f"function directly (or call it) instead")
    return job


def _schedule(job: _Job, callback: Callable[..., object], *args: Any) -> None:
    try:
        job.loop.call_soon_threadsafe(callback, *args, context=contextvars.copy_context())
    except RuntimeError:
        if job.loop.is_closed():
            raise RuntimeError("the event loop this worker thread belongs to is closed") from None
        raise


def check_cancelled() -> None:
    """Raise CancelledError if the task waiting in ``to_thread.run_sync()`` was cancelled.

    Call it now and then from long-running thread code to stop early.
    """
    job = _current_job("check_cancelled()")
    if job.cancel_requested:
        raise job.cancelled_error()


def run(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``await func(*args)`` in the event loop and return its result.

    Blocks this worker thread until the task finishes.  Raises CancelledError if the
    ``run_sync()`` caller is (or gets) cancelled before ``func`` completes.
    """
    job = _current_job("run()")
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    _schedule(job, _start_portal_task, job, func, args, done)
    return done.result()


def run_sync(func: Callable[..., T], *args: Any) -> T:
    """Call ``func(*args)`` in the event loop thread and return its result."""
    job = _current_job("run_sync()")
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    _schedule(job, _call_in_loop, func, args, done)
    return done.result()


def _call_in_loop(func: Callable[..., T], args: tuple[Any, ...],
                  done: concurrent.futures.Future[T]) -> None:
    try:
        result = func(*args)
    except BaseException as exc:
        done.set_exception(exc)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt and friends also belong to the loop
    else:
        done.set_result(result)


def _start_portal_task(job: _Job, func: Callable[..., Awaitable[T]], args: tuple[Any, ...],
                       done: concurrent.futures.Future[T]) -> None:
    task = job.loop.create_task(_portal(job, func, args))

    def report(task: asyncio.Task[T]) -> None:
        try:
            result = task.result()
        except BaseException as exc:  # including the CancelledError the task ended with
            done.set_exception(exc)
        else:
            done.set_result(result)

    task.add_done_callback(report)


async def _portal(job: _Job, func: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    with CancelScope() as scope:
        job.portal_scopes.add(scope)
        if job.cancel_requested:
            scope.cancel("the to_thread.run_sync() caller was cancelled")
        try:
            return await func(*args)
        finally:
            job.portal_scopes.discard(scope)
    # The scope swallowed its own cancellation: func did not complete.
    raise job.cancelled_error()
