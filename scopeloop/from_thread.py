"""Call back into the loop from a worker thread (AnyIO's ``from_thread`` API).

Only threads started by ``to_thread.run_sync()`` can use these: such a worker knows
its loop and the call it is running through a thread-local that ``to_thread`` sets.

* ``run(async_fn, *args)`` runs ``async_fn(*args)`` as a task on the loop and blocks
  the worker until it finishes.  The task runs inside a cancel scope that is
  cancelled when the ``run_sync()`` caller is cancelled, so a worker whose caller
  went away cannot hold the loop's work hostage.  (From a worker started with
  ``abandon_on_cancel=True`` it is a plain task, as in Trio: that caller does not
  wait for the thread, and the thread's work is not cut short with it.)
* ``run_sync(func, *args)`` calls ``func(*args)`` in the loop thread.
* ``check_cancelled()`` raises CancelledError once the ``run_sync()`` caller has
  been cancelled.

Thread safety: the worker never reads the scope tree.  The loop thread sets a
flag on the call when a cancellation reaches the waiting task (one bool write), and
the worker only reads that flag; everything else crosses threads through
``call_soon_threadsafe`` and a ``concurrent.futures.Future``.  Both calls run in a
copy of the worker's context, so context variables carry over from the original
caller through the thread and back.

Any other thread (one the program started itself) can call into a loop too, if it
holds that loop's ``lowlevel.current_token()``: ``run(func, token=token)`` and
``run_sync(func, token=token)``.  Such a call runs in a plain task, linked to no
caller's cancellation; once the loop has finished they raise RunFinishedError.
``BlockingPortal`` and ``start_blocking_portal()`` (module ``portal``, re-exported
here) run a loop for threads to use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .portal import BlockingPortal, BlockingPortalProvider, start_blocking_portal
from .scope import CancelScope
from .to_thread import _Job, current_job
from .token import EventLoopToken, NoEventLoopError, schedule

__all__ = ("run", "run_sync", "check_cancelled", "BlockingPortal", "BlockingPortalProvider",
           "start_blocking_portal")

T = TypeVar("T")


def _current_job(api: str) -> _Job:
    job = current_job()
    if job is None:
        raise NoEventLoopError(
            f"from_thread.{api} can only be called from a worker thread started by "
            f"scopeloop.to_thread.run_sync(), or with token=lowlevel.current_token() "
            f"taken in the loop's thread; in the event loop thread, await the "
            f"function directly (or call it) instead")
    return job


def _token_job(token: EventLoopToken, api: str) -> _Job | None:
    """The worker's job if it belongs to ``token``'s loop (then the call is linked to
    the ``run_sync()`` caller's cancellation), else None after checking the thread."""
    if not isinstance(token, EventLoopToken):
        raise TypeError(f"token must be an EventLoopToken (from lowlevel.current_token()), "
                        f"not {type(token).__name__}")
    job = current_job()
    if job is not None and job.loop is token.loop:
        return job
    if asyncio._get_running_loop() is token.loop:
        raise RuntimeError(f"from_thread.{api} blocks its thread until the loop has run the "
                           f"call, so it cannot be called from that loop's own thread; "
                           f"await the function directly (or call it) instead")
    return None


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
    if job.caller_cancelled():
        raise job.cancelled_error()


def run(func: Callable[..., Awaitable[T]], *args: Any, token: EventLoopToken | None = None) -> T:
    """Run ``await func(*args)`` in the event loop and return its result.

    Blocks this thread until the task finishes.  From a ``to_thread.run_sync()``
    worker: raises CancelledError if the ``run_sync()`` caller is (or gets)
    cancelled before ``func`` completes, unless the worker was started with
    ``abandon_on_cancel=True``.  From any other thread, pass
    ``token=lowlevel.current_token()`` (taken in the loop's thread); raises
    RunFinishedError if that loop has finished, NoEventLoopError without a token.
    """
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    if token is not None:
        token_job = _token_job(token, "run()")
        if token_job is None:
            schedule(token.loop, done, _start_token_task, token.loop, func, args, done,
                     context=contextvars.copy_context())
            return done.result()
        job = token_job
    else:
        job = _current_job("run()")
    if job.abandon_on_cancel:
        _schedule(job, _start_token_task, job.loop, func, args, done)
    else:
        _schedule(job, _start_portal_task, job, func, args, done)
    return done.result()


def run_sync(func: Callable[..., T], *args: Any, token: EventLoopToken | None = None) -> T:
    """Call ``func(*args)`` in the event loop thread and return its result.

    ``token`` as for ``run()``.
    """
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    if token is not None and _token_job(token, "run_sync()") is None:
        schedule(token.loop, done, _call_in_loop, func, args, done,
                 context=contextvars.copy_context())
        return done.result()
    job = _current_job("run_sync()")
    _schedule(job, _call_in_loop, func, args, done)
    return done.result()


def _start_token_task(loop: asyncio.AbstractEventLoop, func: Callable[..., Awaitable[T]],
                      args: tuple[Any, ...], done: concurrent.futures.Future[T]) -> None:
    try:
        task = loop.create_task(_await(func, args))
    except BaseException as exc:
        done.set_exception(exc)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt and friends also belong to the loop
        return
    task.add_done_callback(functools.partial(_report, done))


async def _await(func: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    return await func(*args)


def _report(done: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
    if done.done():
        # The loop closed meanwhile (the caller already has RunFinishedError), or the
        # caller cancelled the concurrent future of a portal task.
        return
    try:
        result = task.result()
    except BaseException as exc:  # including the CancelledError the task ended with
        done.set_exception(exc)
    else:
        done.set_result(result)


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
    task.add_done_callback(functools.partial(_report, done))


async def _portal(job: _Job, func: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    with CancelScope() as scope:
        job.portal_scopes.add(scope)
        if job.caller_cancelled():
            scope.cancel("the to_thread.run_sync() caller was cancelled")
        try:
            return await func(*args)
        finally:
            job.portal_scopes.discard(scope)
    # The scope swallowed its own cancellation: func did not complete.
    raise job.cancelled_error()
