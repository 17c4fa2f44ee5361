"""``gather()``, ``amap()`` and ``as_completed()``: run awaitables concurrently in a
task group (AnyIO 4.16).

Each is a task group with one child per awaitable, so they share its rules: the
first failure cancels the others (through the group's scope, so their shields
hold), every failure is reported in the BaseExceptionGroup the group raises (none
is lost), and cancelling the caller cancels them all.  gather() and amap() return
results in the order the coroutines (or arguments) were given; as_completed()
hands over each task's handle as the task finishes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .group import coroutine_name, create_task_group
from .handle import TaskHandle

if TYPE_CHECKING:
    from .streams import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ("gather", "amap", "as_completed")

R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")
U = TypeVar("U")
V = TypeVar("V")
W = TypeVar("W")


@overload
async def gather(coro1: Coroutine[Any, Any, R], coro2: Coroutine[Any, Any, S], /
                 ) -> tuple[R, S]: ...


@overload
async def gather(coro1: Coroutine[Any, Any, R], coro2: Coroutine[Any, Any, S],
                 coro3: Coroutine[Any, Any, T], /) -> tuple[R, S, T]: ...


@overload
async def gather(coro1: Coroutine[Any, Any, R], coro2: Coroutine[Any, Any, S],
                 coro3: Coroutine[Any, Any, T], coro4: Coroutine[Any, Any, U], /
                 ) -> tuple[R, S, T, U]: ...


@overload
async def gather(coro1: Coroutine[Any, Any, R], coro2: Coroutine[Any, Any, S],
                 coro3: Coroutine[Any, Any, T], coro4: Coroutine[Any, Any, U],
                 coro5: Coroutine[Any, Any, V], /) -> tuple[R, S, T, U, V]: ...


@overload
async def gather(coro1: Coroutine[Any, Any, R], coro2: Coroutine[Any, Any, S],
                 coro3: Coroutine[Any, Any, T], coro4: Coroutine[Any, Any, U],
                 coro5: Coroutine[Any, Any, V], coro6: Coroutine[Any, Any, W], /
                 ) -> tuple[R, S, T, U, V, W]: ...


@overload
async def gather(*coros: Coroutine[Any, Any, R]) -> tuple[R, ...]: ...


async def gather(*coros: Coroutine[Any, Any, Any]) -> tuple[Any, ...]:
    """Run the coroutines concurrently, each in a task; return their results in order.

    Unlike ``asyncio.gather`` this is structured: it returns only once every task
    has ended, a failure cancels the rest and is raised in a BaseExceptionGroup
    with any others, and cancelling the caller cancels all of them.
    """
    async with create_task_group() as tg:
        handles = [tg.create_task(coro) for coro in coros]
    return tuple(handle.return_value for handle in handles)


async def amap(func: Callable[[T], Coroutine[Any, Any, R]], args: Iterable[T]) -> list[R]:
    """Run ``func(arg)`` concurrently for each of ``args``; return the results in order.

    Failure and cancellation as for ``gather()``.  ``args`` is consumed while the
    first calls already run.
    """
    async with create_task_group() as tg:
        handles = [tg.start_soon(func, arg) for arg in args]
    return [handle.return_value for handle in handles]


@asynccontextmanager
async def as_completed(*awaitables: Awaitable[R]
                       ) -> AsyncIterator[MemoryObjectReceiveStream[TaskHandle[R, Any]]]:
    """Run the awaitables concurrently; yield a stream of their handles as they finish.

    ``async with as_completed(a, b) as finished: async for handle in finished:``
    receives each task's handle once the task has ended (read ``return_value``, or
    ``await handle``).  Leaving the block cancels the tasks still running and waits
    for them; a failure cancels the others and is raised by the task group when
    the block is left, as for gather().
    """
    from .streams import create_memory_object_stream

    if not awaitables:
        raise ValueError("as_completed() takes at least one awaitable")
    send, receive = create_memory_object_stream[TaskHandle[R, Any]](len(awaitables))
    async with receive, create_task_group() as tg:
        with send:
            for awaitable in awaitables:
                report = _Report(send.clone())
                handle: TaskHandle[R, Any] = tg.create_task(
                    _run_reporting(awaitable, report),
                    name=coroutine_name(awaitable))
                report.attach(handle)
        try:
            yield receive
        finally:
            tg.cancel_scope.cancel()


async def _run_reporting(awaitable: Awaitable[R], report: _Report) -> R:
    # Reported from inside the task's last step, as in Trio and AnyIO: the receiver
    # is woken before the group hears of a failure (that comes from the task's done
    # callback), so it gets this handle before the group's cancellation.
    try:
        return await awaitable
    finally:
        report.finished()


class _Report:
    """Send a finished task's handle to as_completed()'s stream, once.

    Each holds a clone of the send side, so the stream ends once the last task
    has reported.  An eager task may finish before its handle exists: then the
    handle is sent as soon as it is attached.
    """

    _handle: TaskHandle[Any, Any] | None = None
    _finished = False

    def __init__(self, send: MemoryObjectSendStream[Any]) -> None:
        self._send = send

    def attach(self, handle: TaskHandle[Any, Any]) -> None:
        self._handle = handle
        if self._finished:
            self._deliver()
        else:
            # A task cancelled before its first step never runs its finally block.
            handle._task.add_done_callback(lambda _: self.finished())

    def finished(self) -> None:
        if not self._finished:
            self._finished = True
            if self._handle is not None:
                self._deliver()

    def _deliver(self) -> None:
        from ._resource_errors import BrokenResourceError

        with self._send:
            try:
                self._send.send_nowait(self._handle)
            except BrokenResourceError:
                pass  # the block was left: nobody receives any more
