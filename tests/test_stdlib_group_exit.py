"""asyncio.TaskGroup's exit wait inside a cancelled scope costs no CPU (issue 13).

asyncio.TaskGroup catches the CancelledError of its wait for its children, cancels
them and waits again.  A level-triggered scope must not interrupt every such wait:
that spins at 100% CPU until the children finish.  scopeloop recognised the wait by
the code of ``TaskGroup.__aexit__``, which CPython 3.12.8+/3.13.1+ moved into
``TaskGroup._aexit``; now it is recognised by the future the task waits on.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Callable
from typing import Any

import scopeloop

CLEANUP = 0.5  # long enough for a spin to show in CPU time


async def slow_cleanup_child(started: asyncio.Event) -> None:
    try:
        started.set()
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await asyncio.sleep(CLEANUP)  # the group's one cancel() is used up
        raise


async def cpu_share_of_group_exit(group_class: type[asyncio.TaskGroup]) -> float:
    """CPU seconds per wall second while a cancelled scope waits for a group's exit."""
    started = asyncio.Event()
    with scopeloop.CancelScope() as scope:
        async with group_class() as tg:
            tg.create_task(slow_cleanup_child(started))
            await started.wait()
            scope.cancel()
            cpu, wall = time.process_time(), time.perf_counter()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert scope.cancelled_caught
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert wall >= CLEANUP * 0.9
    return cpu / wall


def test_group_exit_waits_without_cpu(run: Callable[..., Any]) -> None:
    # The program of issue 13: 0.99 CPU/wall on 3.13.5 before the fix.
    assert run(cpu_share_of_group_exit, asyncio.TaskGroup) < 0.2


def _relocated_body() -> tuple[types.FunctionType, bool]:
    """A copy (new code object, new name) of the stdlib group's exit body."""
    body: Any = getattr(asyncio.TaskGroup, "_aexit", asyncio.TaskGroup.__aexit__)
    code = body.__code__.replace(co_name="_relocated_exit",
                                 co_qualname="RelocatedTaskGroup._relocated_exit")
    copy = types.FunctionType(code, body.__globals__, "_relocated_exit",
                              body.__defaults__, body.__closure__)
    return copy, code.co_argcount == 4  # (self, et, exc, tb): 3.11.7-3.13.0's __aexit__


_RELOCATED, _TAKES_TB = _relocated_body()


class RelocatedTaskGroup(asyncio.TaskGroup):
    """The layout of 3.12.8+: __aexit__ delegates to another coroutine method, here
    one that no stdlib function's identity or name matches on any version."""

    _relocated_exit = _RELOCATED

    async def __aexit__(self, et: Any, exc: Any, tb: Any) -> Any:
        if _TAKES_TB:
            return await self._relocated_exit(et, exc, tb)
        try:
            return await self._relocated_exit(et, exc)
        finally:
            # What the stdlib's own __aexit__ does around its _aexit.
            self._parent_task = None
            self._errors = None
            self._base_error = None


def test_relocated_group_exit_waits_without_cpu(run: Callable[..., Any]) -> None:
    assert RelocatedTaskGroup._relocated_exit.__code__ is not getattr(
        asyncio.TaskGroup, "_aexit", asyncio.TaskGroup.__aexit__).__code__
    assert run(cpu_share_of_group_exit, RelocatedTaskGroup) < 0.2


def test_group_exit_reraises_and_the_scope_stays_level_triggered(
        run: Callable[..., Any]) -> None:
    # The wait in the group's exit is left alone, the group re-raises the scope's
    # cancellation once its child is done, and the next checkpoint inside the
    # cancelled scope raises again.
    async def main() -> list[str]:
        seen: list[str] = []

        async def child() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                await asyncio.sleep(0.05)
                seen.append("child cleaned up")
                raise

        with scopeloop.CancelScope() as scope:
            try:
                async with RelocatedTaskGroup() as tg:
                    tg.create_task(child())
                    await asyncio.sleep(0)
                    scope.cancel()
                    await asyncio.sleep(60)
            except asyncio.CancelledError:
                seen.append("group re-raised")
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                seen.append("next checkpoint raised")
                raise
        assert scope.cancelled_caught
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        return seen

    assert run(main) == ["child cleaned up", "group re-raised", "next checkpoint raised"]
