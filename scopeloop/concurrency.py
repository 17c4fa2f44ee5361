"""``gather()`` and ``amap()``: run awaitables concurrently in a task group (AnyIO 4.16).

Both are a task group with one child per coroutine, so they share its rules: the
first failure cancels the others (through the group's scope, so their shields
hold), every failure is reported in the BaseExceptionGroup the group raises (none
is lost), and cancelling the caller cancels them all.  Results come back in the
order the coroutines (or arguments) were given, not in the order they finished.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar, overload

from .group import create_task_group

__all__ = ("gather", "amap")

R = TypeVar("R")
S = TypeVar("S")
T = TypeVar("T")
U = TypeVar("U")
V = TypeVar("V")
W = TypeVar("W")


async def _store(results: list[Any], index: int, awaitable: Awaitable[Any]) -> None:
    results[index] = await awaitable


async def _store_call(results: list[Any], index: int, func: Callable[[Any], Awaitable[Any]],
                      arg: Any) -> None:
    results[index] = await func(arg)


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
    results: list[Any] = [None] * len(coros)
    async with create_task_group() as tg:
        for index, coro in enumerate(coros):
            tg.start_soon(_store, results, index, coro,
                          name=getattr(coro, "__qualname__", None))
    return tuple(results)


async def amap(func: Callable[[T], Coroutine[Any, Any, R]], args: Iterable[T]) -> list[R]:
    """Run ``func(arg)`` concurrently for each of ``args``; return the results in order.

    Failure and cancellation as for ``gather()``.  ``args`` is consumed while the
    first calls already run.
    """
    results: list[Any] = []
    name = getattr(func, "__qualname__", None)
    async with create_task_group() as tg:
        for index, arg in enumerate(args):
            results.append(None)
            tg.start_soon(_store_call, results, index, func, arg, name=name)
    return results
