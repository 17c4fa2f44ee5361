"""Which scope catches what, checked program by program against Trio (and AnyIO).

Each program is written once against a small API namespace and run on Trio 0.35
(the oracle) and on scopeloop (every backend); the per-task observations must be
equal.  Where Trio cannot express a program (a fresh CancelledError raised by hand,
a native ``Task.cancel()``), AnyIO 4.16 on asyncio is the reference: it recognises
a cancel scope's cancellation in the same places (issue 14, items 4, 5 and 8).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
import trio
import trio.testing

import scopeloop


def describe(exc: BaseException | None, api: Any) -> str:
    """An exception as a comparable string: kind, and a group's message and members."""
    if exc is None:
        return "nothing"
    if isinstance(exc, BaseExceptionGroup):
        kind = "ExceptionGroup" if isinstance(exc, ExceptionGroup) else "BaseExceptionGroup"
        inner = ", ".join(describe(e, api) for e in exc.exceptions)
        return f"{kind}({exc.args[0]!r}: {inner})"
    if isinstance(exc, api.Cancelled):
        return "Cancelled"
    if isinstance(exc, api.TooSlow):
        return "Timeout"
    return f"{type(exc).__name__}{exc.args!r}"


TRIO = SimpleNamespace(
    name="trio",
    CancelScope=trio.CancelScope,
    Cancelled=trio.Cancelled,
    TooSlow=trio.TooSlowError,
    checkpoint=trio.lowlevel.checkpoint,
    sleep_forever=trio.sleep_forever,
    fail_after=lambda delay, shield=False: trio.fail_after(delay, shield=shield),
    move_on_after=lambda delay, shield=False: trio.move_on_after(delay, shield=shield),
    open_group=trio.open_nursery,
    wait_blocked=trio.testing.wait_all_tasks_blocked,
)

SCOPELOOP = SimpleNamespace(
    name="scopeloop",
    CancelScope=scopeloop.CancelScope,
    Cancelled=asyncio.CancelledError,
    TooSlow=TimeoutError,
    checkpoint=scopeloop.checkpoint,
    sleep_forever=lambda: asyncio.sleep(3600),
    fail_after=scopeloop.fail_after,
    move_on_after=scopeloop.move_on_after,
    open_group=scopeloop.create_task_group,
    wait_blocked=scopeloop.wait_all_tasks_blocked,
)

ANYIO = SimpleNamespace(
    name="anyio",
    CancelScope=anyio.CancelScope,
    Cancelled=asyncio.CancelledError,
    TooSlow=TimeoutError,
    checkpoint=lambda: asyncio.sleep(0),
    sleep_forever=lambda: asyncio.sleep(3600),
    fail_after=anyio.fail_after,
    move_on_after=anyio.move_on_after,
    open_group=anyio.create_task_group,
)
# The same programs use plain asyncio awaits on AnyIO's scopes and on scopeloop's.
SCOPELOOP_ASYNCIO = SimpleNamespace(**{**vars(SCOPELOOP), "name": "scopeloop-asyncio",
                                       "checkpoint": lambda: asyncio.sleep(0)})

Program = Callable[[Any, list[str]], Awaitable[None]]


def observe(program: Program, api: Any, runner: Callable[..., Any]) -> list[str]:
    """Run ``program`` with ``api``; what it logged, then what escaped it."""
    async def main() -> list[str]:
        log: list[str] = []
        try:
            await program(api, log)
        except BaseException as exc:
            log.append("escaped " + describe(exc, api))
        else:
            log.append("escaped nothing")
        return log
    return runner(main)  # type: ignore[no-any-return]


def same_as_trio(program: Program, run: Callable[..., Any]) -> list[str]:
    expected = observe(program, TRIO, trio.run)
    assert observe(program, SCOPELOOP, run) == expected
    return expected


def same_as_anyio(program: Program, run: Callable[..., Any]) -> list[str]:
    expected = observe(program, ANYIO, lambda main: anyio.run(main, backend="asyncio"))
    assert observe(program, SCOPELOOP_ASYNCIO, run) == expected
    return expected


def caught(*scopes: Any) -> str:
    return "caught " + " ".join(str(s.cancelled_caught) for s in scopes)


# -- item 4: a scope's cancellation inside an exception group ------------------------


async def except_star_reraise(api: Any, log: list[str]) -> None:
    with api.CancelScope() as scope:
        scope.cancel()
        try:
            await api.checkpoint()
        except* api.Cancelled:
            log.append("handled")
            raise  # re-raised as a BaseExceptionGroup
    log.append(caught(scope))


async def group_next_to_real_errors(api: Any, log: list[str]) -> None:
    try:
        with api.CancelScope() as scope:
            scope.cancel()
            try:
                await api.checkpoint()
            except api.Cancelled as cancel:
                raise BaseExceptionGroup("both", [ValueError("real"), cancel]) from None
    finally:
        log.append(caught(scope))


async def nested_groups(api: Any, log: list[str]) -> None:
    try:
        with api.CancelScope() as scope:
            scope.cancel()
            try:
                await api.checkpoint()
            except api.Cancelled as cancel:
                inner = BaseExceptionGroup("inner", [cancel])
                raise BaseExceptionGroup("outer", [inner, KeyError("k")])
    except BaseExceptionGroup as exc:
        # The rest keeps the original's chaining.
        log.append(f"cause {describe(exc.__cause__, api)} "
                   f"context {describe(exc.__context__, api)}")
        raise
    finally:
        log.append(caught(scope))


async def group_caught_by_the_outermost_cancelled_scope(api: Any, log: list[str]) -> None:
    with api.CancelScope() as outer:
        with api.CancelScope() as middle:
            with api.CancelScope() as inner:
                inner.cancel()
                outer.cancel()
                try:
                    await api.checkpoint()
                except* api.Cancelled:
                    raise
            log.append("not reached")
    log.append(caught(outer, middle, inner))


async def shielded_scope_catches_its_group(api: Any, log: list[str]) -> None:
    with api.CancelScope() as outer:
        outer.cancel()
        with api.CancelScope(shield=True) as shielded:
            shielded.cancel()
            try:
                await api.checkpoint()
            except* api.Cancelled:
                raise
        log.append(caught(shielded))
        try:
            await api.checkpoint()
        except* api.Cancelled:
            log.append("outer region still cancelled")
            raise
    log.append(caught(outer))


async def group_only_of_real_errors(api: Any, log: list[str]) -> None:
    try:
        with api.CancelScope() as scope:
            scope.cancel()
            try:
                await api.checkpoint()
            except api.Cancelled:
                raise ExceptionGroup("real only", [ValueError("v")]) from None
    finally:
        log.append(caught(scope))


async def child_reraises_with_except_star(api: Any, log: list[str]) -> None:
    async def child() -> None:
        try:
            await api.sleep_forever()
        except* api.Cancelled:
            log.append("child handled")
            raise

    with api.CancelScope() as outer:
        async with api.open_group() as group:
            group.start_soon(child)
            await api.wait_blocked()
            outer.cancel()
    log.append(caught(outer))


async def host_reraises_with_except_star_in_a_group(api: Any, log: list[str]) -> None:
    with api.CancelScope() as outer:
        async with api.open_group() as group:
            outer.cancel()
            try:
                await api.checkpoint()
            except* api.Cancelled:
                raise
    log.append(caught(outer, group.cancel_scope))


async def inner_scope_cancelled_and_shielded_after_the_interruption(
        api: Any, log: list[str]) -> None:
    # The task is interrupted for the outer scope; before it runs, another task
    # cancels and shields the inner one, which then catches the error on its way.
    outer, inner = api.CancelScope(), api.CancelScope()

    async def victim() -> None:
        with outer:
            with inner:
                await api.sleep_forever()
            log.append("after inner")
        log.append(caught(outer, inner))

    async with api.open_group() as group:
        group.start_soon(victim)
        await api.wait_blocked()
        outer.cancel()
        inner.cancel()
        inner.shield = True


@pytest.mark.parametrize("program", [
    inner_scope_cancelled_and_shielded_after_the_interruption,
    host_reraises_with_except_star_in_a_group, except_star_reraise, group_next_to_real_errors, nested_groups,
    group_caught_by_the_outermost_cancelled_scope, shielded_scope_catches_its_group,
    group_only_of_real_errors, child_reraises_with_except_star,
], ids=lambda p: p.__name__)
def test_cancellation_inside_an_exception_group(run, program):
    same_as_trio(program, run)


def test_cancellation_inside_an_exception_group_expected(run):
    # What Trio says, spelled out for the two main cases.
    assert same_as_trio(except_star_reraise, run) == [
        "handled", "caught True", "escaped nothing"]
    assert same_as_trio(group_next_to_real_errors, run) == [
        "caught True", "escaped ExceptionGroup('both': ValueError('real',))"]


# -- item 4: a fresh CancelledError raised while handling the scope's ----------------


async def fresh_cancelled_error(api: Any, log: list[str]) -> None:
    with api.CancelScope() as scope:
        scope.cancel()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError as exc:
            raise asyncio.CancelledError() from exc  # what asyncpg does: no message
    log.append(caught(scope))


async def fresh_after_handled_native_cancel(api: Any, log: list[str]) -> None:
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        log.append(f"native handled, uncancel -> {task.uncancel()}")
    await fresh_cancelled_error(api, log)
    log.append(f"cancelling {task.cancelling()}")


async def fresh_from_a_nested_region(api: Any, log: list[str]) -> None:
    with api.CancelScope() as outer:
        with api.CancelScope() as inner:
            outer.cancel()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise asyncio.CancelledError()  # implicitly chained
    log.append(caught(outer, inner))


async def by_hand_without_interruption(api: Any, log: list[str]) -> None:
    try:
        with api.CancelScope() as scope:
            scope.cancel()
            raise asyncio.CancelledError("by hand")  # nothing was interrupted
    finally:
        log.append(caught(scope))


async def fresh_with_native_cancel_pending(api: Any, log: list[str]) -> None:
    task = asyncio.current_task()
    assert task is not None
    try:
        with api.CancelScope() as scope:
            scope.cancel()
            task.cancel()  # never swallowed
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError as exc:
                raise asyncio.CancelledError() from exc
    finally:
        log.append(f"{caught(scope)} cancelling {task.cancelling()}")
        task.uncancel()


async def group_with_native_cancel_pending(api: Any, log: list[str]) -> None:
    task = asyncio.current_task()
    assert task is not None
    try:
        with api.CancelScope() as scope:
            scope.cancel()
            task.cancel()
            try:
                await asyncio.sleep(3600)
            except* asyncio.CancelledError:
                raise
    finally:
        log.append(f"{caught(scope)} cancelling {task.cancelling()}")
        task.uncancel()


@pytest.mark.parametrize("program", [
    fresh_cancelled_error, fresh_after_handled_native_cancel, fresh_from_a_nested_region,
    by_hand_without_interruption, fresh_with_native_cancel_pending,
    group_with_native_cancel_pending,
], ids=lambda p: p.__name__)
def test_fresh_cancelled_error_like_anyio(run, program):
    same_as_anyio(program, run)


def test_fresh_cancelled_error_expected(run):
    assert same_as_anyio(fresh_cancelled_error, run) == ["caught True", "escaped nothing"]
    assert same_as_anyio(fresh_after_handled_native_cancel, run) == [
        "native handled, uncancel -> 0", "caught True", "cancelling 0", "escaped nothing"]
    assert same_as_anyio(fresh_with_native_cancel_pending, run) == [
        "caught False cancelling 1", "escaped Cancelled"]


# -- item 5: no exception is lost ------------------------------------------------------


async def timeout_passes_an_outer_scope_cancelled_meanwhile(api: Any, log: list[str]) -> None:
    try:
        with api.CancelScope() as outer:
            try:
                with api.fail_after(0.001):
                    await api.sleep_forever()
            finally:
                outer.cancel()
    finally:
        log.append(caught(outer))


async def timeout_passes_an_interrupted_outer_scope(api: Any, log: list[str]) -> None:
    try:
        with api.CancelScope() as outer:
            outer.cancel()
            try:
                await api.checkpoint()
            except api.Cancelled:
                log.append("outer interrupted us once")
            with api.fail_after(0, shield=True):
                await api.checkpoint()
    finally:
        log.append(caught(outer))


async def timeout_passes_move_on_after(api: Any, log: list[str]) -> None:
    try:
        with api.move_on_after(3600) as outer:
            try:
                with api.fail_after(0.001) as inner:
                    await api.sleep_forever()
            finally:
                outer.cancel()
                log.append(caught(inner))
    finally:
        log.append(caught(outer))


@pytest.mark.parametrize("program", [
    timeout_passes_an_outer_scope_cancelled_meanwhile,
    timeout_passes_an_interrupted_outer_scope, timeout_passes_move_on_after,
], ids=lambda p: p.__name__)
def test_timeout_error_is_never_lost(run, program):
    assert same_as_trio(program, run)[-1] == "escaped Timeout"


# -- item 8: a task that blocks in a cancelled region is interrupted -------------------


async def blocks_after_cancelling_itself(api: Any, log: list[str]) -> None:
    # The operation completes from elsewhere before the cancelled task is re-examined
    # (a setter that runs first): the await raises all the same, as every checkpoint.
    if api is TRIO:
        event = trio.Event()

        async def setter() -> None:
            event.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(setter)
            with trio.CancelScope() as scope:
                scope.cancel()
                try:
                    await event.wait()
                    log.append("wait returned")
                except trio.Cancelled:
                    log.append("wait raised")
                    raise
    else:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_soon(future.set_result, "value")
        with scopeloop.CancelScope() as scope:
            scope.cancel()
            try:
                await future
                log.append("wait returned")
            except asyncio.CancelledError:
                log.append("wait raised")
                raise
    log.append(caught(scope))


async def completed_before_the_cancel_arrives(api: Any, log: list[str]) -> None:
    # Woken by the operation first, cancelled second: the result is seen, and the
    # next checkpoint raises.
    if api is TRIO:
        event = trio.Event()
        scope = trio.CancelScope()

        async def waiter() -> None:
            with scope:
                await event.wait()
                log.append("wait returned")
                await trio.lowlevel.checkpoint()
                log.append("not reached")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            event.set()
            scope.cancel()
    else:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        scope = scopeloop.CancelScope()

        async def waiter() -> None:
            with scope:
                await future
                log.append("wait returned")
                await scopeloop.checkpoint()
                log.append("not reached")

        async with scopeloop.create_task_group() as group:
            group.start_soon(waiter)
            await scopeloop.wait_all_tasks_blocked()
            future.set_result(None)
            scope.cancel()
    log.append(caught(scope))


@pytest.mark.parametrize("program", [
    blocks_after_cancelling_itself, completed_before_the_cancel_arrives,
], ids=lambda p: p.__name__)
def test_blocking_in_a_cancelled_region(run, program):
    same_as_trio(program, run)
